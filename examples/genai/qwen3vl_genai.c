/* Runs a q3vl package in stock onnxruntime-genai 0.15.2 through its own multimodal processor:
 *   qwen3vl_genai PACKAGE_DIR IMAGE "PROMPT" [MAX_NEW_TOKENS]
 * PROMPT is the full chat text with one <|vision_start|><|image_pad|><|vision_end|> per image
 * (genai expands the pads). Greedy decoding; prints the generated token ids on one line, then the
 * decoded text. DeepStack rides in the package's wide visual channel, so nothing is lost.
 * Build: cc qwen3vl_genai.c -I<genai>/include -L<genai>/lib -lonnxruntime-genai
 * Run with libonnxruntime.so (1.29) on LD_LIBRARY_PATH. */
#include <stdio.h>
#include <stdlib.h>

#include "ort_genai_c.h"

static int check(OgaResult* result, const char* what) {
  if (result == NULL) return 1;
  fprintf(stderr, "error: %s: %s\n", what, OgaResultGetError(result));
  OgaDestroyResult(result);
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s PACKAGE_DIR IMAGE PROMPT [MAX_NEW_TOKENS]\n", argv[0]);
    return 2;
  }
  const int max_new_tokens = argc > 4 ? atoi(argv[4]) : 32;
  int ok = 0;
  OgaConfig* config = NULL;
  OgaModel* model = NULL;
  OgaMultiModalProcessor* processor = NULL;
  OgaImages* images = NULL;
  OgaNamedTensors* inputs = NULL;
  OgaGeneratorParams* params = NULL;
  OgaGenerator* generator = NULL;
  OgaTokenizer* tokenizer = NULL;

  if (getenv("Q3VL_GENAI_LOG") != NULL) { /* genai prints every session's inputs */
    check(OgaSetLogBool("enabled", true), "log");
    check(OgaSetLogBool("model_input_values", true), "log");
  }
  if (!check(OgaCreateConfig(argv[1], &config), "config") || !check(OgaConfigClearProviders(config), "providers") ||
      !check(OgaCreateModelFromConfig(config, &model), "model") ||
      !check(OgaCreateMultiModalProcessor(model, &processor), "processor") ||
      !check(OgaCreateTokenizer(model, &tokenizer), "tokenizer") || !check(OgaLoadImage(argv[2], &images), "image") ||
      !check(OgaProcessorProcessImages(processor, argv[3], images, &inputs), "process") ||
      !check(OgaCreateGeneratorParams(model, &params), "params") ||
      !check(OgaGeneratorParamsSetSearchBool(params, "do_sample", false), "do_sample") ||
      !check(OgaCreateGenerator(model, params, &generator), "generator") ||
      !check(OgaGenerator_SetInputs(generator, inputs), "inputs")) {
    goto done;
  }
  {
    const size_t prompt_tokens = OgaGenerator_TokenCount(generator);
    int32_t* generated = malloc(sizeof(int32_t) * (size_t)max_new_tokens);
    int count = 0;
    while (count < max_new_tokens && !OgaGenerator_IsDone(generator)) {
      const int32_t* next = NULL;
      size_t next_count = 0;
      if (!check(OgaGenerator_GenerateNextToken(generator), "generate") ||
          !check(OgaGenerator_GetNextTokens(generator, &next, &next_count), "next tokens")) {
        free(generated);
        goto done;
      }
      generated[count++] = next[0];
    }
    fprintf(stderr, "prompt tokens: %zu\n", prompt_tokens);
    for (int i = 0; i < count; ++i) printf("%s%d", i ? " " : "", generated[i]);
    printf("\n");
    const char* text = NULL;
    if (check(OgaTokenizerDecode(tokenizer, generated, (size_t)count, &text), "decode")) {
      printf("%s\n", text);
      OgaDestroyString(text);
    }
    free(generated);
    ok = 1;
  }
done:
  if (generator) OgaDestroyGenerator(generator);
  if (params) OgaDestroyGeneratorParams(params);
  if (inputs) OgaDestroyNamedTensors(inputs);
  if (images) OgaDestroyImages(images);
  if (tokenizer) OgaDestroyTokenizer(tokenizer);
  if (processor) OgaDestroyMultiModalProcessor(processor);
  if (model) OgaDestroyModel(model);
  if (config) OgaDestroyConfig(config);
  OgaShutdown();
  return ok ? 0 : 1;
}
