#include "agent/slot_pool.h"

#include <algorithm>
#include <utility>

namespace spotgrid::agent {

SlotPool::SlotPool(int slots) : slots_(static_cast<std::size_t>(std::max(slots, 1))) {}

SlotPool::~SlotPool() { JoinAll(); }

int SlotPool::FreeSlotsLocked() const {
  return static_cast<int>(
      std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return !s.busy; }));
}

int SlotPool::FreeSlots() const {
  std::lock_guard<std::mutex> lock(mu_);
  return FreeSlotsLocked();
}

std::vector<std::string> SlotPool::UnitsInHand() const {
  std::vector<std::string> units;
  std::lock_guard<std::mutex> lock(mu_);
  for (const Slot& slot : slots_) {
    if (slot.busy) units.push_back(slot.job + "/" + slot.unit);
  }
  return units;
}

void SlotPool::ReapFinished() {
  std::vector<std::thread> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Slot& slot : slots_) {
      if (slot.done && slot.thread.joinable()) {
        done.push_back(std::move(slot.thread));
        slot.done = false;
      }
    }
  }
  for (std::thread& thread : done) thread.join();
}

int SlotPool::Reserve(const std::string& job, const std::string& unit) {
  ReapFinished();
  std::lock_guard<std::mutex> lock(mu_);
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    // A slot whose thread has not been joined yet is not free: its thread object is in use.
    if (slots_[i].busy || slots_[i].thread.joinable()) continue;
    slots_[i].busy = true;
    slots_[i].job = job;
    slots_[i].unit = unit;
    return static_cast<int>(i);
  }
  return -1;
}

void SlotPool::Unreserve(int slot) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    slots_[slot].busy = false;
    slots_[slot].job.clear();
    slots_[slot].unit.clear();
  }
  // Nothing waits for a reserved slot (only the main loop reserves), but a waiter counting
  // free slots must see it.
  freed_.notify_all();
}

void SlotPool::Start(int slot, std::function<void()> work, std::function<void()> on_freed) {
  std::lock_guard<std::mutex> lock(mu_);
  // Created under the lock, so the thread's Done cannot run before `thread` is set.
  slots_[slot].thread = std::thread(
      [this, slot, work = std::move(work), on_freed = std::move(on_freed)]() mutable {
        work();
        Done(slot);
        if (on_freed) on_freed();
      });
}

void SlotPool::Done(int slot) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    slots_[slot].busy = false;
    slots_[slot].job.clear();
    slots_[slot].unit.clear();
    slots_[slot].done = true;
  }
  freed_.notify_all();
}

int SlotPool::WaitForFreeSlot(const std::function<bool()>& give_up) {
  std::unique_lock<std::mutex> lock(mu_);
  freed_.wait(lock, [&] { return give_up() || FreeSlotsLocked() > 0; });
  return FreeSlotsLocked();
}

void SlotPool::Wake() {
  // Taking the lock orders this wake-up after a waiter's check of `give_up`, so it is not
  // lost between the check and the wait.
  { std::lock_guard<std::mutex> lock(mu_); }
  freed_.notify_all();
}

void SlotPool::JoinAll() {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Slot& slot : slots_) {
      if (slot.thread.joinable()) threads.push_back(std::move(slot.thread));
    }
  }
  for (std::thread& thread : threads) thread.join();
}

}  // namespace spotgrid::agent
