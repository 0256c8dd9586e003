// SlotPool: the agent's fixed set of slots, each running at most one unit on a thread of its
// own. The main loop reserves a slot before it claims a unit (so a claim never outruns the
// capacity), starts the unit's work on it, and waits for a slot to free up; a slot's thread
// frees its slot when the work returns, and its thread is joined later (ReapFinished,
// JoinAll), never by itself.
//
//   free --Reserve--> reserved --Start--> running --work returns--> done (free again, thread
//   waiting to be joined) --ReapFinished--> free
//   reserved --Unreserve--> free (the claim did not give this agent the unit)
//
// What a unit does in its slot is UnitRunner's; the pool only knows the (job, unit) each slot
// holds, for the status line and the worker item.
//
// Thread-safety: every method may be called from any thread; `on_freed` callbacks run on the
// slot's thread, outside the pool's lock. The destructor joins every slot thread.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace spotgrid::agent {

class SlotPool {
 public:
  explicit SlotPool(int slots);  // at least one slot
  ~SlotPool();
  SlotPool(const SlotPool&) = delete;
  SlotPool& operator=(const SlotPool&) = delete;

  int size() const { return static_cast<int>(slots_.size()); }

  // Reserves a free slot for `job`/`unit` (after joining the threads of slots whose work has
  // ended); -1 when none is free.
  int Reserve(const std::string& job, const std::string& unit);
  // Hands back a reserved slot whose unit was not started.
  void Unreserve(int slot);
  // Runs `work` on a new thread for the reserved `slot`. When `work` returns, the slot is free
  // (and Wait... wakes up), then `on_freed` runs on the same thread.
  void Start(int slot, std::function<void()> work, std::function<void()> on_freed);

  int FreeSlots() const;
  bool NoUnitsInHand() const { return FreeSlots() == size(); }
  // "job/unit" of every busy slot, in slot order.
  std::vector<std::string> UnitsInHand() const;

  // Waits until a slot is free or `give_up()` holds; returns the number of free slots then. `give_up` is evaluated under the pool's lock whenever the pool is
  // woken: by a freed slot or by Wake().
  int WaitForFreeSlot(const std::function<bool()>& give_up);
  // Wakes WaitForFreeSlot so it evaluates `give_up` again (a stop, a pause of intake).
  void Wake();

  // Joins the threads of slots whose work has ended.
  void ReapFinished();
  // Joins every slot thread (after their work was told to end).
  void JoinAll();

 private:
  struct Slot {
    bool busy = false;
    std::string job, unit;
    bool done = false;  // the thread has ended and waits to be joined
    std::thread thread;
  };
  int FreeSlotsLocked() const;
  void Done(int slot);

  mutable std::mutex mu_;  // guards slots_
  std::condition_variable freed_;
  std::vector<Slot> slots_;
};

}  // namespace spotgrid::agent
