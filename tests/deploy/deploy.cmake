# The scale-out kit (deploy/): two `q3vl serve` replicas behind nginx with the shipped
# deploy/nginx/q3vl.conf. Skipped (77) where nginx, curl or node is missing.
add_test(NAME deploy.scale_out_nginx
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/scale_out_test.sh $<TARGET_FILE:q3vl_cli> ${CMAKE_SOURCE_DIR})
set_tests_properties(deploy.scale_out_nginx PROPERTIES LABELS server SKIP_RETURN_CODE 77 TIMEOUT 240)
