#pragma once
// The q3vl runtime library: load a package once (Model), talk to it in any number of Conversations.
#include "q3vl/conversation.h"
#include "q3vl/error.h"
#include "q3vl/image.h"
#include "q3vl/model.h"
#include "q3vl/sampling.h"
