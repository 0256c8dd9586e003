// Finding what a verb acts on: the stack (--stack or SPOTGRID_STACK), its ledger, the job
// (--job, else the stack's only or most recent job) and a unit, with the messages a user
// needs when one of them does not exist. Unknown names are bad input (exit 2).
//
// Thread-safety: call from the verb's thread.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "cli.h"
#include "spotgrid/ledger/ledger.h"
#include "spotgrid/ledger/types.h"

namespace spotgrid {

struct StackHandle {
  StackInfo info;
  std::shared_ptr<Ledger> ledger;
};

// The stack of --stack / SPOTGRID_STACK and its ledger; a missing name is a usage error.
Result<StackHandle> OpenStack(const Args& args, Controller& controller);

// The job named by --job; without --job the only job, or the most recent one, which is then
// named on stderr (unless `quiet`) so the user knows which job they are looking at.
Result<JobRecord> SelectJob(const Args& args, Controller& controller, Ledger& ledger,
                            const StackInfo& stack, bool quiet);

// The unit, or an InvalidInput error naming the job and unit.
Result<UnitRecord> RequireUnit(Ledger& ledger, const std::string& job, const std::string& unit);

}  // namespace spotgrid
