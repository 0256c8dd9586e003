// One function per verb, each in controller/verbs/<verb>.cc, returning its Verb.
#pragma once

#include "cli.h"

namespace spotgrid {

Verb InitVerb();
Verb EnqueueVerb();
Verb ProgressVerb();
Verb ListVerb();
Verb ShowVerb();
Verb LogsVerb();
Verb ResultsVerb();
Verb RetryVerb();
Verb CancelVerb();
Verb WorkersVerb();
Verb UserdataVerb();

}  // namespace spotgrid
