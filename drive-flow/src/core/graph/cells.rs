//! Per-run state cells, sized by the graph, kept by the graph between runs.
//!
//! The threads that complete a run's events share its state without a run-wide lock: each
//! event has its own cell (its latest outcome behind a lock of its own, its counts as
//! atomics), and each join (a group of two or more members) has its own (its counters, and
//! each member's latest outcome and delivered mark, behind the join's lock). A join whose
//! listener does not read its members' outcomes and that has at most [`PACKED_MEMBERS`]
//! members (most joins) keeps no outcome: its state is two sets of members packed in one
//! word, which a completion updates by one compare-and-swap, no lock (inline, a load and a
//! store), and which is never reset: the word carries the mark of the run that wrote it
//! ([`Cells::update_packed`]). A wider join counts its members' first completions down
//! without its lock, each member's outcome (if its listener reads them) kept apart
//! ([`Cells::count_member`]): only the completion that makes the set whole, and a
//! member's later ones, take it. Two completions
//! meet only where the graph makes them meet: at an event they both are, or at a join they
//! are both members of. A run whose events all complete in its own task (an inline run)
//! keeps its events' outcomes and its joins' states in that task instead ([`TaskCells`]):
//! no lock at all.
//!
//! A run should cost what it touches, not the size of the graph: a 10-event run in a drive
//! of 100 000 events must not allocate and reset 100 000 cells. So the cells are taken from
//! the graph's pool when a run starts and given back when it ends, with only the cells the
//! run touched reset; each touched cell is listed (in the order first touched) the first
//! time it is touched, by one atomic increment of the list's length (a load and a store in
//! a run with one writer, [`Writers::One`]). What says it is the first time costs nothing
//! more: an event's trigger count, read as it is counted; a join's place in the list,
//! under its lock (or in the run's one task).

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crossbeam_utils::Backoff;
use smallvec::SmallVec;

use crate::core::graph::GroupInfo;
use crate::core::input::Latest;
use crate::core::lock::lock;

/// How many sets of cells a graph keeps for later runs; more concurrent runs allocate
/// their own and drop them at the end.
const POOL_LIMIT: usize = 16;

/// A run that touched at least one event in this many has its touched events listed by a
/// pass over every event's cell rather than by a sort ([`Cells::touched_nodes_by_id`]).
const DENSE: usize = 8;

/// Graphs up to this many cells have them all checked when they are given back, in debug
/// builds.
const CHECK_UP_TO: usize = 1 << 16;

/// What a run counts of one event (20 bytes: an event's run touches its cell, and a run of
/// many events reads and writes cells three or four to a cache line; its outcome is kept
/// apart, [`Cells::outcome`], and not read at all by a run that keeps it in its task).
#[derive(Default)]
pub(crate) struct NodeCell {
    /// How many times it was triggered (for the runner's budgets). Its first trigger lists
    /// the cell as touched ([`Cells::trigger`]): a run triggers an event before it
    /// completes it.
    triggered: AtomicU32,
    /// Its attempts beyond the first of each run (retries), recorded by the runner: its
    /// attempts are its completions and these (an event with no retries, most, costs no
    /// count of its own).
    pub(crate) retries: AtomicU32,
    /// Its place in the run's list of touched events (set at its first trigger): where a
    /// run that keeps its cells in its task keeps this event's outcome ([`TaskCells`]).
    listed_at: AtomicU32,
    /// The goto jumps from this event to one target, counted here rather than in the run's
    /// trace, under its lock: a loop jumps along the same pair again and again.
    pub(crate) gotos: GotoCount,
}

/// The goto jumps from one event to the first target it jumped to, after its first jump
/// (that one goes into the run's trace, under its lock, which keeps the order in which
/// pairs first jumped).
#[derive(Default)]
pub(crate) struct GotoCount {
    /// The target, plus one (`0`: none yet). Set once, under the trace's lock.
    target: AtomicU32,
    /// Jumps to it counted here.
    jumps: AtomicU32,
}

/// Past this many jumps counted in a cell, they are moved into the run's trace (whose
/// counts saturate), so that the cell's count never wraps.
const GOTO_SPILL: u32 = 1 << 30;

impl GotoCount {
    /// Count a jump to `target` here, if it is the target this cell counts: whether it did.
    /// `spill`: called with the count when it grew large, to move it into the trace.
    #[inline]
    pub(crate) fn count(&self, target: u32, writers: Writers, spill: impl FnOnce(u32)) -> bool {
        if self.target.load(Ordering::Relaxed) != target.wrapping_add(1) || target == u32::MAX {
            return false;
        }
        if writers.add(&self.jumps, 1, Ordering::Relaxed) >= GOTO_SPILL {
            spill(self.jumps.swap(0, Ordering::Relaxed));
        }
        true
    }

    /// Count jumps to `target` here from now on, if this cell counts none yet (called
    /// under the trace's lock, after the jump was counted there).
    pub(crate) fn adopt(&self, target: u32) {
        if self.target.load(Ordering::Relaxed) == 0 {
            self.target.store(target.wrapping_add(1), Ordering::Relaxed);
        }
    }

    /// The jumps to `target` counted here (once the run's completions are over).
    pub(crate) fn jumps_to(&self, target: u32) -> u32 {
        if self.target.load(Ordering::Acquire) == target.wrapping_add(1) {
            self.jumps.load(Ordering::Acquire)
        } else {
            0
        }
    }

    fn is_clean(&mut self) -> bool {
        *self.target.get_mut() == 0 && *self.jumps.get_mut() == 0
    }
}

impl NodeCell {
    /// How many times it was triggered so far.
    pub(crate) fn triggered(&self) -> u32 {
        self.triggered.load(Ordering::Relaxed)
    }

    /// Its place in the run's list of touched events.
    pub(crate) fn listed_at(&self) -> usize {
        self.listed_at.load(Ordering::Relaxed) as usize
    }
}

/// The cells a run whose events all end in its own task (an inline run, one writer:
/// [`Writers::One`]) keeps in that task, where using one takes no lock: the outcome of each
/// event the run touched, at its place in the run's list of touched events, and the state
/// of each join that is not packed ([`Cells::update_packed`]: its listener reads its
/// members' outcomes, or it has more than [`PACKED_MEMBERS`] members), at its place in the
/// run's list of touched joins.
#[derive(Default)]
pub(crate) struct TaskCells {
    outcomes: Vec<Outcome>,
    /// Reset when a run first touches the join at its place (a run's end does not sweep
    /// them: on a graph of joins that was most of what ending a run cost), but those that
    /// hold their members' outcomes, listed in `valued`, reset at the run's end (values are
    /// not kept past the run that made them).
    joins: Vec<GroupState>,
    /// The places of the joins that hold outcomes in this run.
    valued: Vec<u32>,
}

impl TaskCells {
    /// The outcome of the event listed at `at`. Outcomes are reused in place, run after
    /// run (a reset one is clean), not pushed: a push builds the outcome on the stack and
    /// copies it at once, and that copy waits for the stores that built it (a store
    /// forwarding stall, ~3 % of an inline chain's time on an AMD EPYC, Zen).
    pub(crate) fn outcome_at(&mut self, at: usize) -> &mut Outcome {
        if at >= self.outcomes.len() {
            self.outcomes.resize_with(at + 1, Outcome::default);
        }
        &mut self.outcomes[at]
    }

    /// The outcome of the event listed at `at`, if it has one here.
    pub(crate) fn outcome(&self, at: usize) -> Option<&Outcome> {
        self.outcomes.get(at)
    }

    /// Take the outcome of the event listed at `at`, if it has one here.
    pub(crate) fn take_outcome(&mut self, at: usize) -> Option<Outcome> {
        self.outcomes.get_mut(at).map(std::mem::take)
    }

    /// Forget what a run that touched `touched` events kept, keeping the memory (and the
    /// clean outcomes) for the next run of the same cells: the outcomes, and the joins that
    /// hold outcomes (the others are reset when a run first touches them).
    fn reset(&mut self, touched: usize) {
        // Those past the events the run touched are clean: no run wrote them since.
        for outcome in self.outcomes.iter_mut().take(touched) {
            *outcome = Outcome::default();
        }
        for at in self.valued.drain(..) {
            if let Some(join) = self.joins.get_mut(at as usize) {
                join.reset();
            }
        }
    }

    /// Whether nothing is kept (the pool's invariant): no outcome, and no join holding
    /// one (a join may keep its counts and marks until a run first touches it).
    fn is_clean(&self) -> bool {
        self.outcomes
            .iter()
            .all(|outcome| outcome.latest.is_none() && outcome.completions == 0)
            && self.valued.is_empty()
            && self.joins.iter().all(GroupState::holds_no_outcome)
    }

    /// The state of the join of `members` members listed at `at`; `first`: the run touches
    /// it for the first time (what an earlier run left there is reset), and `valued`: it
    /// holds its members' outcomes (it is reset at the run's end).
    #[inline]
    fn join_at(&mut self, at: usize, members: usize, first: bool, valued: bool) -> &mut GroupState {
        if first && valued {
            self.valued.push(at as u32);
        }
        if at >= self.joins.len() {
            self.joins.resize_with(at + 1, GroupState::default);
        }
        let state = &mut self.joins[at];
        if first {
            state.reset();
        }
        if state.slots.len() != members {
            state.slots.resize_with(members, SlotState::default);
        }
        state
    }
}

/// Who updates a run's counters: the run's own task alone (an inline run, whose events all
/// complete in that task), or any of the runtime's threads.
///
/// A counter with one writer is read and written back rather than updated by an atomic
/// read-modify-write: the others only read it, and a read-modify-write costs tens of cycles
/// even on a line no other core holds. Both are atomic operations; were a second writer to
/// appear, counts would be lost, never memory.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Writers {
    /// One task at a time (a task moving between threads is ordered by the scheduler).
    One,
    Many,
}

impl Writers {
    /// Add `n` to `counter` (`order`: that of a read-modify-write; a load and a store take
    /// its acquire and release halves); what it held. Wrapping, as `fetch_add` does: take
    /// `n` away with `n.wrapping_neg()`.
    #[inline]
    pub(crate) fn add<C: Counter>(self, counter: &C, n: C::Value, order: Ordering) -> C::Value {
        match self {
            Writers::One => {
                let held = counter.load(order_of_load(order));
                counter.store(C::wrapping_add(held, n), order_of_store(order));
                held
            }
            Writers::Many => counter.fetch_add(n, order),
        }
    }
}

/// An atomic counter, for [`Writers::add`].
pub(crate) trait Counter {
    type Value: Copy;
    fn load(&self, order: Ordering) -> Self::Value;
    fn store(&self, value: Self::Value, order: Ordering);
    fn fetch_add(&self, n: Self::Value, order: Ordering) -> Self::Value;
    fn wrapping_add(value: Self::Value, n: Self::Value) -> Self::Value;
}

macro_rules! counter {
    ($($atomic:ty => $value:ty),*) => {$(
        impl Counter for $atomic {
            type Value = $value;

            #[inline]
            fn load(&self, order: Ordering) -> $value {
                <$atomic>::load(self, order)
            }

            #[inline]
            fn store(&self, value: $value, order: Ordering) {
                <$atomic>::store(self, value, order)
            }

            #[inline]
            fn fetch_add(&self, n: $value, order: Ordering) -> $value {
                <$atomic>::fetch_add(self, n, order)
            }

            #[inline]
            fn wrapping_add(value: $value, n: $value) -> $value {
                value.wrapping_add(n)
            }
        }
    )*};
}
counter!(AtomicU32 => u32, AtomicU64 => u64, AtomicUsize => usize);

/// The ordering a load can take for a read-modify-write's `order`.
fn order_of_load(order: Ordering) -> Ordering {
    match order {
        Ordering::AcqRel | Ordering::Acquire | Ordering::SeqCst => Ordering::Acquire,
        _ => Ordering::Relaxed,
    }
}

/// The ordering a store can take for a read-modify-write's `order`.
fn order_of_store(order: Ordering) -> Ordering {
    match order {
        Ordering::AcqRel | Ordering::Release | Ordering::SeqCst => Ordering::Release,
        _ => Ordering::Relaxed,
    }
}

/// An event's latest outcome in a run, and its count of completions (counted under the lock
/// the outcome is written under: no atomic of its own).
#[derive(Default)]
pub(crate) struct Outcome {
    /// Its latest outcome, once it has completed in this run.
    pub(crate) latest: Option<Latest>,
    /// How many times it completed.
    pub(crate) completions: u32,
}

/// What a run knows of one group of more than one member, behind the group's lock.
#[derive(Default)]
pub(crate) struct GroupState {
    /// How many members have completed at least once.
    pub(crate) ready: u32,
    /// How many members' latest outcome was already handed to the group's listener.
    pub(crate) delivered: u32,
    /// Each member as the group saw it last, in group order: under the group's lock with
    /// the counts (one lock taken per member's completion, and one for all the members
    /// when the group fires). In place for a join of two (most), allocated with the cells
    /// for a larger one; kept by the pool between runs.
    pub(crate) slots: SmallVec<[SlotState; 2]>,
}

impl GroupState {
    /// Whether no member's outcome is kept.
    fn holds_no_outcome(&self) -> bool {
        self.slots.iter().all(|slot| slot.latest.is_none())
    }

    /// Whether nothing is recorded (tests).
    #[cfg(test)]
    fn is_clean(&self) -> bool {
        self.ready == 0
            && self.delivered == 0
            && self
                .slots
                .iter()
                .all(|slot| slot.latest.is_none() && !slot.completed && !slot.delivered)
    }

    /// Forget what a run recorded, keeping the slots' memory.
    fn reset(&mut self) {
        // No member completed: no slot holds an outcome or a mark (a slot's mark and
        // outcome are set at its member's first completion, which counts in `ready`).
        if self.ready == 0 {
            return;
        }
        self.ready = 0;
        self.delivered = 0;
        for slot in self.slots.iter_mut() {
            *slot = SlotState::default();
        }
    }
}

/// One member of a group, as the group saw it last.
#[derive(Default)]
pub(crate) struct SlotState {
    /// The member's latest outcome, as the group saw it; kept only for a listener that
    /// reads its results (see `DispatchState::hands_results`).
    pub(crate) latest: Option<Latest>,
    /// Whether the member has completed in this run.
    pub(crate) completed: bool,
    /// Whether its latest outcome was handed to the group's listener.
    pub(crate) delivered: bool,
}

/// One join's cell (a group of two or more members; a group of one member has none).
pub(crate) struct GroupCell {
    /// Its state, in a run with many writers (an inline run's task keeps its own: see
    /// [`TaskCells`]).
    state: Mutex<GroupState>,
    /// Its members' first completions, counted without the lock, for a join too wide to
    /// be packed (none for the others).
    countdown: Countdown,
}

impl GroupCell {
    /// The cell of a join whose locked state has `members` member slots (none if it is
    /// packed); `valued`: it keeps their outcomes. A join too wide to be packed counts
    /// its members down without its lock ([`Cells::count_member`]).
    fn new(members: usize, valued: bool) -> Self {
        let counted = if counts_down(members) { members } else { 0 };
        GroupCell {
            state: Mutex::new(GroupState {
                slots: (0..members).map(|_| SlotState::default()).collect(),
                ..GroupState::default()
            }),
            countdown: Countdown {
                firsts: (0..counted).map(|_| AtomicU32::new(0)).collect(),
                ready: AtomicU64::new(0),
                outcomes: (0..if valued { counted } else { 0 })
                    .map(|_| Mutex::new(None))
                    .collect(),
            },
        }
    }
}

/// The members of a wide join that completed in the run, counted without the join's lock:
/// `all` needs nothing more until the last member comes (the countdown that is a
/// hand-written join's whole cost). Like a packed join's word, the counts are never reset:
/// each word carries the mark of the run that wrote it ([`Cells::epoch`]). The members'
/// outcomes, for a listener that reads them, are kept here too, one lock each (a member's
/// completions meet no other member's there), and dropped at the run's end.
struct Countdown {
    /// Per member, in group order: the mark of the run in which it first completed, with
    /// [`Countdown::COUNTING`] while that completion is being counted.
    firsts: Box<[AtomicU32]>,
    /// How many members completed in the run (low half), and its mark (high half).
    ready: AtomicU64,
    /// Per member, in group order, for a join whose listener reads them: its latest
    /// outcome in the run (none for a join that keeps no outcome).
    outcomes: Box<[Mutex<Option<Latest>>]>,
}

impl Countdown {
    /// A member's first completion is being counted (the bit above a run's mark).
    const COUNTING: u32 = 1 << 16;

    /// The count in `word`, as the run marked `epoch` reads it (as [`PackedJoin::sets`]).
    #[inline]
    fn count(word: u64, epoch: u16) -> u32 {
        if (word >> 32) as u16 != epoch {
            return 0;
        }
        word as u32
    }

    /// The word of `count`, written by the run marked `epoch`.
    #[inline]
    fn word(count: u32, epoch: u16) -> u64 {
        (u64::from(epoch) << 32) | u64::from(count)
    }

    /// Drop the outcomes a run kept.
    fn drop_outcomes(&mut self) {
        for outcome in self.outcomes.iter_mut() {
            reset_locked(outcome, |outcome| *outcome = None);
        }
    }

    /// Whether it keeps no outcome (the pool's invariant).
    fn holds_no_outcome(&mut self) -> bool {
        self.outcomes
            .iter_mut()
            .all(|outcome| outcome.get_mut().map_or(true, |outcome| outcome.is_none()))
    }

    /// Clear every word (when the runs' marks wrap around).
    fn clear(&mut self) {
        for first in self.firsts.iter_mut() {
            *first.get_mut() = 0;
        }
        *self.ready.get_mut() = 0;
    }
}

/// How [`Cells::count_member`] counted a member's completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MemberCount {
    /// The join does not count its members without its lock: its locked state says
    /// whether this is the member's first completion.
    Uncounted,
    /// The member's first completion, and some other member has not completed yet: the
    /// join cannot fire, and there is nothing else to record.
    Counted,
    /// The member's first completion, the last member's: under the join's lock, every
    /// member has completed. Until [`Cells::counted`] is called, a later completion of the
    /// member waits for this one.
    Completes,
    /// A later completion of the member (after its first was counted, and, if that one
    /// completed the set, recorded under the lock).
    Again,
}

/// A join's place in the run's list of touched joins, plus one (`0`: not touched yet;
/// [`JoinListed::LISTING`]: being listed). Kept apart from the joins' cells (4 bytes each,
/// sixteen to a cache line): a run that keeps its joins' states in its task reads this
/// alone.
struct JoinListed(AtomicU32);

impl JoinListed {
    /// Being listed by another thread (a counted join's member, without the join's lock).
    const LISTING: u32 = u32::MAX;

    /// Whether the run has not touched the join yet.
    #[inline]
    fn is_unlisted(&self) -> bool {
        self.0.load(Ordering::Relaxed) == 0
    }

    /// The join's place in the run's list of touched joins; listed there first if it was
    /// not (once, whatever the threads that list it at once).
    #[inline]
    fn list(&self, join: u32, touched: &Touched, writers: Writers) -> usize {
        let place = |at: usize| {
            u32::try_from(at + 1).map_or(Self::LISTING - 1, |at| at.min(Self::LISTING - 1))
        };
        if writers == Writers::One {
            return match self.0.load(Ordering::Relaxed) {
                0 => {
                    let at = touched.push(join, writers);
                    self.0.store(place(at), Ordering::Relaxed);
                    at
                }
                listed => listed as usize - 1,
            };
        }
        let backoff = Backoff::new();
        loop {
            match self.0.load(Ordering::Acquire) {
                0 => {
                    let won = self
                        .0
                        .compare_exchange(0, Self::LISTING, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok();
                    if won {
                        let at = touched.push(join, writers);
                        self.0.store(place(at), Ordering::Release);
                        return at;
                    }
                }
                // Another thread is between its claim and its store: a few instructions.
                Self::LISTING => backoff.snooze(),
                listed => return listed as usize - 1,
            }
        }
    }
}

/// The largest join whose state can be packed in one word ([`Cells::update_packed`]).
pub(crate) const PACKED_MEMBERS: usize = 24;

/// Whether a join keeps its state packed in one word ([`Cells::update_packed`]), and no
/// locked state: it has at most [`PACKED_MEMBERS`] members, and its listener does not read
/// their outcomes. Decided once per group, when the graph is built ([`GroupInfo::packed`]).
pub(crate) fn packs(results_read: bool, members: usize) -> bool {
    !results_read && members <= PACKED_MEMBERS
}

/// Whether the join of `group` keeps its state packed in one word (see [`packs`]).
#[inline]
pub(crate) fn is_packed(group: &GroupInfo) -> bool {
    group.packed
}

/// A join's state in one word: the set of its members that completed in the run (bits 0
/// to 23), the set of those whose latest outcome was handed to its listener (bits 24 to
/// 47), and the mark of the run that wrote it (bits 48 to 63, [`Cells::epoch`]).
struct PackedJoin(AtomicU64);

impl PackedJoin {
    const SET: u64 = (1 << PACKED_MEMBERS) - 1;

    /// The sets in `word`, as the run marked `epoch` reads them.
    #[inline]
    fn sets(word: u64, epoch: u16) -> (u32, u32) {
        if (word >> 48) as u16 != epoch {
            return (0, 0);
        }
        (
            (word & Self::SET) as u32,
            ((word >> PACKED_MEMBERS) & Self::SET) as u32,
        )
    }

    /// The word of these sets, written by the run marked `epoch`.
    #[inline]
    fn word(completed: u32, delivered: u32, epoch: u16) -> u64 {
        (u64::from(epoch) << 48)
            | ((u64::from(delivered) & Self::SET) << PACKED_MEMBERS)
            | (u64::from(completed) & Self::SET)
    }
}

/// A list that threads append to, each index once: the cells a run touched.
struct Touched {
    ids: Box<[AtomicU32]>,
    len: AtomicUsize,
}

impl Touched {
    fn new(capacity: usize) -> Self {
        Touched {
            ids: (0..capacity).map(|_| AtomicU32::new(0)).collect(),
            len: AtomicUsize::new(0),
        }
    }

    /// List `id`, which its caller knows is not listed yet (each id is listed at most once,
    /// so the list never outgrows its capacity, the number of ids): its place in the list.
    fn push(&self, id: u32, writers: Writers) -> usize {
        let at = writers.add(&self.len, 1, Ordering::AcqRel);
        if let Some(slot) = self.ids.get(at) {
            slot.store(id, Ordering::Release);
        }
        at
    }

    /// The ids listed so far, in the order they were first touched. Read once the run's
    /// completions are over (the runner's count of events in flight orders them before).
    fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        let len = self.len.load(Ordering::Acquire).min(self.ids.len());
        self.ids[..len].iter().map(|id| id.load(Ordering::Acquire))
    }

    fn clear(&mut self) {
        *self.len.get_mut() = 0;
    }
}

/// One run's cells: one per event and per join of the graph (with a slot per member),
/// untouched (every outcome `None`, every count 0) while in the pool.
pub(crate) struct Cells {
    nodes: Box<[NodeCell]>,
    /// Per event, its latest outcome and how many times it completed, under its lock (a
    /// run that keeps them in its task, [`TaskCells`], leaves these alone).
    outcomes: Box<[Mutex<Outcome>]>,
    /// One per join, numbered as in [`Joins`].
    groups: Box<[GroupCell]>,
    /// Per join, its place in the list of touched joins ([`JoinListed`]).
    joins_listed: Box<[JoinListed]>,
    /// Per join, its state packed in one word, for the joins small enough whose listener
    /// does not read its members' outcomes ([`Cells::update_packed`]): updated by one
    /// compare-and-swap, without a lock (by a load and a store in a run with one writer,
    /// whose task then keeps no state of its own for them).
    packed: Box<[PackedJoin]>,
    /// This run's mark on the packed joins' words: a word written by another run (an
    /// earlier one over these cells) reads as a join that no member reached yet, so that
    /// they are never reset one by one. Changed when the cells are given back.
    epoch: u16,
    touched_nodes: Touched,
    touched_groups: Touched,
    /// What the task of an inline run keeps (taken out for the run: [`Cells::take_task`]),
    /// kept with these cells between runs so that its memory is reused as theirs is.
    task: Mutex<TaskCells>,
}

impl Cells {
    /// Cells for `nodes` events and joins whose locked states have these numbers of member
    /// slots, and which keep their members' outcomes or not.
    fn new(nodes: usize, joins: impl ExactSizeIterator<Item = (usize, bool)>) -> Self {
        let groups = joins.len();
        Cells {
            nodes: (0..nodes).map(|_| NodeCell::default()).collect(),
            outcomes: (0..nodes).map(|_| Mutex::default()).collect(),
            groups: joins
                .map(|(slots, valued)| GroupCell::new(slots, valued))
                .collect(),
            joins_listed: (0..groups).map(|_| JoinListed(AtomicU32::new(0))).collect(),
            packed: (0..groups).map(|_| PackedJoin(AtomicU64::new(0))).collect(),
            epoch: 1,
            touched_nodes: Touched::new(nodes),
            touched_groups: Touched::new(groups),
            task: Mutex::default(),
        }
    }

    /// Take out what an inline run's task keeps (untouched: its memory that of an earlier
    /// run over these cells), once, at the start of the run.
    pub(crate) fn take_task(&self) -> TaskCells {
        std::mem::take(&mut *lock(&self.task))
    }

    /// Put back what an inline run's task kept, once the run's results are taken: reset
    /// when the cells are given back.
    pub(crate) fn keep_task(&self, task: TaskCells) {
        *lock(&self.task) = task;
    }

    /// No cells (allocates nothing): what a run holds once it gave its cells back.
    pub(crate) fn empty() -> Self {
        Cells::new(0, std::iter::empty())
    }

    /// The cell of event `node` (triggered before, so listed as touched).
    pub(crate) fn node(&self, node: u32) -> &NodeCell {
        &self.nodes[node as usize]
    }

    /// The latest outcome of event `node` and how many times it completed (unless the
    /// run's task keeps them).
    pub(crate) fn outcome(&self, node: u32) -> &Mutex<Outcome> {
        &self.outcomes[node as usize]
    }

    /// Count a trigger of event `node`: how many it had before. The first lists its cell
    /// as touched; its count says so, so that listing costs no atomic of its own but the
    /// list's length.
    pub(crate) fn trigger(&self, node: u32, writers: Writers) -> u32 {
        let cell = &self.nodes[node as usize];
        let before = writers.add(&cell.triggered, 1, Ordering::Relaxed);
        if before == 0 {
            let at = self.touched_nodes.push(node, writers);
            cell.listed_at
                .store(u32::try_from(at).unwrap_or(u32::MAX), Ordering::Relaxed);
        }
        before
    }

    /// The state of join `join` (its number in [`Joins`]), locked, and listed as touched
    /// by the run the first time (under the lock, which orders the completions that could
    /// list it at once), and reset then: an earlier run's counts and marks stay until a run
    /// touches the join again (see [`Cells::reset`]).
    pub(crate) fn lock_group(&self, join: u32, writers: Writers) -> MutexGuard<'_, GroupState> {
        let mut state = lock(&self.groups[join as usize].state);
        let listed = &self.joins_listed[join as usize];
        if listed.is_unlisted() {
            state.reset();
        }
        listed.list(join, &self.touched_groups, writers);
        state
    }

    /// Count the completion of member `index` (its place in the group) of join `join`, of
    /// `size` members, if the join counts its members down without its lock: a join too
    /// wide to be packed, in a run with many writers. One compare-and-swap on the
    /// member's word says whether it is its first completion in the run, one increment of
    /// the join's count whether it is the last member's; the lock is taken only then, and
    /// for a member's later completions (see [`MemberCount`]). A first completion's
    /// `outcome` is kept (if the join keeps its members' outcomes) before it is counted,
    /// so that the completion that counts the set whole finds every member's; a later
    /// one's is kept under the lock ([`Cells::keep_outcome`]).
    ///
    /// The order this makes is one a lock would have made: the first completions that do
    /// not complete the set change nothing but the count, so they may come in any order
    /// among the others; the one that completes it is recorded under the lock, and a later
    /// completion of the same member (its event run again meanwhile, ending on another
    /// thread) waits for that first: its first is recorded before it, as a lock would have
    /// it.
    #[inline]
    pub(crate) fn count_member(
        &self,
        join: u32,
        index: usize,
        size: u32,
        outcome: &Latest,
    ) -> MemberCount {
        let Some(countdown) = self.countdown(join) else {
            return MemberCount::Uncounted;
        };
        let Some(first) = countdown.firsts.get(index) else {
            return MemberCount::Uncounted;
        };
        let epoch = u32::from(self.epoch);
        let backoff = Backoff::new();
        loop {
            let word = first.load(Ordering::Acquire);
            if word & u32::from(u16::MAX) == epoch {
                if word & Countdown::COUNTING == 0 {
                    return MemberCount::Again;
                }
                // Its first completion is being counted on another thread, a few
                // instructions from done (or recorded under the lock, if it completes the
                // set): this later one comes after it.
                backoff.snooze();
                continue;
            }
            if first
                .compare_exchange_weak(
                    word,
                    epoch | Countdown::COUNTING,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                break;
            }
        }
        if let Some(kept) = countdown.outcomes.get(index) {
            // Listed as touched by the run (the outcome is dropped at its end), and kept.
            if let Some(listed) = self.joins_listed.get(join as usize) {
                listed.list(join, &self.touched_groups, Writers::Many);
            }
            *lock(kept) = Some(outcome.clone());
        }
        let counted = |word| Countdown::count(word, self.epoch).saturating_add(1);
        let before = countdown
            .ready
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                Some(Countdown::word(counted(word), self.epoch))
            })
            .unwrap_or_else(|word| word);
        if counted(before) < size {
            first.store(epoch, Ordering::Release);
            return MemberCount::Counted;
        }
        MemberCount::Completes
    }

    /// The countdown of join `join`.
    fn countdown(&self, join: u32) -> Option<&Countdown> {
        self.groups.get(join as usize).map(|cell| &cell.countdown)
    }

    /// Keep `outcome` as the latest of member `index` of counted join `join` (a later
    /// completion, under the join's lock).
    pub(crate) fn keep_outcome(&self, join: u32, index: usize, outcome: &Latest) {
        if let Some(kept) = self.countdown(join).and_then(|c| c.outcomes.get(index)) {
            *lock(kept) = Some(outcome.clone());
        }
    }

    /// The latest outcome of member `index` of counted join `join`, under the join's lock
    /// as it fires.
    pub(crate) fn kept_outcome(&self, join: u32, index: usize) -> Option<Latest> {
        lock(self.countdown(join)?.outcomes.get(index)?).clone()
    }

    /// The completion of member `index` of join `join` that [`count_member`] found to
    /// complete the set ([`MemberCount::Completes`]) is recorded: the member's later
    /// completions may come.
    ///
    /// [`count_member`]: Cells::count_member
    pub(crate) fn counted(&self, join: u32, index: usize) {
        if let Some(first) = self.countdown(join).and_then(|c| c.firsts.get(index)) {
            first.store(u32::from(self.epoch), Ordering::Release);
        }
    }

    /// The state of join `join` of `members` members kept in `kept` by the task of a run
    /// with one writer ([`Writers::One`]): no lock. Listed as touched the first time (and
    /// reset then). `valued`: it keeps its members' outcomes.
    #[inline]
    pub(crate) fn task_group<'k>(
        &self,
        join: u32,
        members: usize,
        valued: bool,
        kept: &'k mut TaskCells,
    ) -> &'k mut GroupState {
        let listed = &self.joins_listed[join as usize];
        let first = listed.is_unlisted();
        let at = listed.list(join, &self.touched_groups, Writers::One);
        kept.join_at(at, members, first, valued)
    }

    /// Update the packed state of join `join` (of at most [`PACKED_MEMBERS`] members):
    /// `update` gets the sets of its members (bit `i` for the `i`-th, in group order) that
    /// completed in this run and whose latest outcome was handed to its listener, as this
    /// run left them (both empty at the run's first touch), and gives the new sets and its
    /// answer. With many `writers`, one compare-and-swap (`update` is called again if
    /// another thread's completion came in between: only its last answer counts, and it is
    /// returned); with one, a load and a store.
    #[inline]
    pub(crate) fn update_packed<R>(
        &self,
        join: u32,
        writers: Writers,
        mut update: impl FnMut(u32, u32) -> (u32, u32, R),
    ) -> Option<R> {
        let word = &self.packed.get(join as usize)?.0;
        let epoch = self.epoch;
        let mut next = |current| {
            let (completed, delivered) = PackedJoin::sets(current, epoch);
            let (completed, delivered, answer) = update(completed, delivered);
            (PackedJoin::word(completed, delivered, epoch), answer)
        };
        match writers {
            Writers::One => {
                let (word_now, answer) = next(word.load(Ordering::Relaxed));
                word.store(word_now, Ordering::Relaxed);
                Some(answer)
            }
            Writers::Many => {
                let mut answer = None;
                let _ = word.fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                    let (word_now, said) = next(current);
                    answer = Some(said);
                    Some(word_now)
                });
                answer
            }
        }
    }

    /// How many members of join `join` completed, as its cell's state counts them (tests).
    #[cfg(test)]
    pub(crate) fn join_ready(&self, join: u32) -> u32 {
        let packed = self.packed[join as usize].0.load(Ordering::Acquire);
        let counted = self.groups[join as usize]
            .countdown
            .ready
            .load(Ordering::Acquire);
        lock(&self.groups[join as usize].state)
            .ready
            .max(Countdown::count(counted, self.epoch))
            + PackedJoin::sets(packed, self.epoch).0.count_ones()
    }

    /// Whether the run touched at least half of the graph's events (its cells are then
    /// about as large as a list of what it touched).
    pub(crate) fn touched_half(&self) -> bool {
        let touched = self.touched_nodes.len.load(Ordering::Acquire);
        touched.saturating_mul(2) >= self.nodes.len()
    }

    /// The events the run touched, in the order it first touched them.
    pub(crate) fn touched_nodes(&self) -> impl Iterator<Item = u32> + '_ {
        self.touched_nodes.ids()
    }

    /// The events the run touched, in the order of their ids. They are listed in the order
    /// they were first triggered, which is often the order of their ids already (a chain, a
    /// fan-out, graphs built in order: one pass checks it). Otherwise a run that touched a
    /// good part of the graph has its cells' marks read in order (no sort); a run that
    /// touched a few events of a large graph has their ids sorted (4 bytes each, not the
    /// entries built from them).
    pub(crate) fn touched_nodes_by_id(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.touched_nodes.ids().collect();
        if ids.windows(2).all(|pair| pair[0] < pair[1]) {
            return ids;
        }
        if ids.len().saturating_mul(DENSE) >= self.nodes.len() {
            ids.clear();
            ids.extend(
                (0u32..)
                    .zip(self.nodes.iter())
                    .filter(|(_, cell)| cell.triggered.load(Ordering::Acquire) > 0)
                    .map(|(id, _)| id),
            );
        } else {
            ids.sort_unstable();
        }
        ids
    }

    /// Reset every cell the run touched (dropping the outcomes it holds). `kept_in_task`:
    /// the run kept its outcomes and its joins' states in its task ([`TaskCells`], reset
    /// here too), so that the cells' own are clean, and are not read: a run of 10⁵ events
    /// would read each one from memory only to find it so (a third of the reset's time).
    /// Of the joins' cells, only those that keep outcomes (`valued`, per join) are reset
    /// here; the others when a run first touches them ([`Cells::lock_group`]): at the end
    /// of a run of 10⁵ joins, their reset was a sweep through cold memory.
    fn reset(&mut self, kept_in_task: bool, valued: &[bool]) {
        for at in 0..(*self.touched_nodes.len.get_mut()).min(self.nodes.len()) {
            let node = *self.touched_nodes.ids[at].get_mut() as usize;
            if let Some(cell) = self.nodes.get_mut(node) {
                *cell = NodeCell::default();
            }
            if !kept_in_task {
                if let Some(outcome) = self.outcomes.get_mut(node) {
                    *outcome = Mutex::default();
                }
            }
        }
        for at in 0..(*self.touched_groups.len.get_mut()).min(self.groups.len()) {
            let group = *self.touched_groups.ids[at].get_mut();
            if let Some(listed) = self.joins_listed.get_mut(group as usize) {
                *listed.0.get_mut() = 0;
            }
            if !kept_in_task && valued.get(group as usize).copied().unwrap_or(true) {
                if let Some(cell) = self.groups.get_mut(group as usize) {
                    reset_locked(&mut cell.state, GroupState::reset);
                    cell.countdown.drop_outcomes();
                }
            }
        }
        // The packed joins: a new mark, under which every word reads as untouched. When
        // the marks wrap around, every word is cleared (once in 65 535 runs), so that no
        // word written under a mark is read under it by a later run.
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            for join in self.packed.iter_mut() {
                *join.0.get_mut() = 0;
            }
            for cell in self.groups.iter_mut() {
                cell.countdown.clear();
            }
            self.epoch = 1;
        }
        let touched = (*self.touched_nodes.len.get_mut()).min(self.nodes.len());
        self.touched_nodes.clear();
        self.touched_groups.clear();
        reset_locked(&mut self.task, |task| task.reset(touched));
    }

    /// Whether every cell is untouched (the pool's invariant).
    fn is_clean(&mut self) -> bool {
        self.task.get_mut().map_or(true, |task| task.is_clean())
            && self.outcomes.iter_mut().all(|outcome| {
                outcome.get_mut().map_or(true, |outcome| {
                    outcome.latest.is_none() && outcome.completions == 0
                })
            })
            && self.nodes.iter_mut().all(|cell| {
                *cell.triggered.get_mut() == 0
                    && *cell.retries.get_mut() == 0
                    && *cell.listed_at.get_mut() == 0
                    && cell.gotos.is_clean()
            })
            // (A join may keep its counts and marks until a run first touches it, and a
            // packed join's word an earlier run's sets, which read as untouched under a
            // later run's mark.)
            && self.groups.iter_mut().all(|cell| {
                cell.countdown.holds_no_outcome()
                    && cell
                        .state
                        .get_mut()
                        .map_or(true, |state| state.holds_no_outcome())
            })
            && self
                .joins_listed
                .iter_mut()
                .all(|listed| *listed.0.get_mut() == 0)
    }
}

/// Reset what `mutex` holds with `reset`. A poisoned lock (a panic under it) is cleared:
/// what it holds is reset anyway, and its memory reused.
fn reset_locked<T>(mutex: &mut Mutex<T>, reset: impl FnOnce(&mut T)) {
    reset(
        mutex
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    mutex.clear_poison();
}

/// Where the cells of a graph's joins are: groups of one member (most listeners) have
/// none, so that a chain or a fan-out keeps no group state at all.
struct Joins {
    /// Per group of the graph: its join number, or [`NOT_A_JOIN`].
    of_group: Box<[u32]>,
    /// Per join: how many member slots its locked state has (its members; none for a
    /// packed join, which has no use for them).
    slots: Box<[u32]>,
    /// Per join: whether it keeps its members' outcomes (its listener reads them), which
    /// a run's end drops (a join's counts and marks are reset when a run first touches it).
    valued: Box<[bool]>,
}

/// Whether a join whose locked state has `slots` member slots counts their first
/// completions down without its lock ([`Cells::count_member`]): it is too wide to be
/// packed ([`packs`]; a packed join has no slots).
fn counts_down(slots: usize) -> bool {
    slots > PACKED_MEMBERS
}

/// A group of one member.
const NOT_A_JOIN: u32 = u32::MAX;

impl Joins {
    fn new(groups: &[GroupInfo]) -> Self {
        let mut of_group = Vec::with_capacity(groups.len());
        let mut slots = Vec::new();
        let mut valued = Vec::new();
        for group in groups {
            let size = group.slots.len() as u32;
            if size > 1 {
                of_group.push(slots.len() as u32);
                slots.push(if is_packed(group) { 0 } else { size });
                valued.push(group.results_read);
            } else {
                of_group.push(NOT_A_JOIN);
            }
        }
        Joins {
            of_group: of_group.into_boxed_slice(),
            slots: slots.into_boxed_slice(),
            valued: valued.into_boxed_slice(),
        }
    }

    /// How many member slots each join's locked state has, in join order, and whether it
    /// keeps their outcomes.
    fn slots(&self) -> impl ExactSizeIterator<Item = (usize, bool)> + '_ {
        self.slots
            .iter()
            .zip(self.valued.iter())
            .map(|(&slots, &valued)| (slots as usize, valued))
    }
}

/// The graph's spare [`Cells`].
pub(crate) struct CellsPool {
    spare: Mutex<Vec<Cells>>,
    joins: Joins,
}

impl CellsPool {
    /// The pool of a graph with these groups.
    pub(crate) fn new(groups: &[GroupInfo]) -> Self {
        CellsPool {
            spare: Mutex::new(Vec::new()),
            joins: Joins::new(groups),
        }
    }

    /// The cell of group `group` (for [`Cells::lock_group`]), if it is a join (two or
    /// more members).
    pub(crate) fn join(&self, group: u32) -> Option<u32> {
        let cell = *self.joins.of_group.get(group as usize)?;
        (cell != NOT_A_JOIN).then_some(cell)
    }

    /// Cells for a run over a graph of this shape, untouched: reused if one set is spare.
    pub(crate) fn take(&self, nodes: usize) -> Cells {
        let spare = lock(&self.spare).pop();
        spare.unwrap_or_else(|| Cells::new(nodes, self.joins.slots()))
    }

    /// Reset what `cells`' run touched, and keep them for a later run. `kept_in_task`: the
    /// run kept its outcomes and its joins' states in its task (see [`Cells::reset`]).
    pub(crate) fn give_back(&self, mut cells: Cells, kept_in_task: bool) {
        cells.reset(kept_in_task, &self.joins.valued);
        // A full check costs the size of the graph: debug builds make it for graphs of the
        // size of tests, not for large ones where it would dominate every run.
        if cfg!(debug_assertions) && cells.nodes.len() + cells.groups.len() <= CHECK_UP_TO {
            assert!(cells.is_clean(), "a run left a cell touched");
        }
        let mut spare = lock(&self.spare);
        if spare.len() < POOL_LIMIT {
            spare.push(cells);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::any::Any;
    use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::{Cells, GotoCount, MemberCount, TaskCells, Writers, DENSE, GOTO_SPILL};
    use crate::core::flow::AnyValue;
    use crate::core::input::Latest;

    /// Cells of `nodes` events (no join) in which `order` was triggered, in that order.
    fn triggered_in(nodes: usize, order: &[u32]) -> Cells {
        let cells = Cells::new(nodes, std::iter::empty());
        for &node in order {
            cells.trigger(node, Writers::One);
        }
        cells
    }

    #[test]
    fn the_touched_events_come_by_id_whether_touched_in_order_densely_or_sparsely() {
        // In the order of their ids already (a chain, a fan-out): taken as listed.
        let in_order = triggered_in(100, &[0, 3, 4, 50, 99]);
        assert_eq!(in_order.touched_nodes_by_id(), [0, 3, 4, 50, 99]);
        // Out of order, a good part of the graph: read off the cells.
        let dense = triggered_in(10, &[5, 1, 9, 0]);
        const { assert!(4 * DENSE >= 10) };
        assert_eq!(dense.touched_nodes_by_id(), [0, 1, 5, 9]);
        // Out of order, a few events of a large graph: sorted.
        let sparse = triggered_in(1_000, &[700, 2, 41]);
        const { assert!(3 * DENSE < 1_000) };
        assert_eq!(sparse.touched_nodes_by_id(), [2, 41, 700]);
        // Triggered twice, listed once.
        let again = triggered_in(1_000, &[7, 3, 7]);
        assert_eq!(again.touched_nodes_by_id(), [3, 7]);
    }

    #[test]
    fn a_cells_goto_count_counts_its_one_target_and_spills_before_it_could_wrap() {
        for writers in [Writers::One, Writers::Many] {
            let mut count = GotoCount::default();
            let mut spilled = Vec::new();
            assert!(
                !count.count(4, writers, |n| spilled.push(n)),
                "no target yet"
            );
            count.adopt(4);
            count.adopt(5); // the first target stays
            assert!(count.count(4, writers, |n| spilled.push(n)));
            assert!(
                !count.count(5, writers, |n| spilled.push(n)),
                "another target"
            );
            assert_eq!((count.jumps_to(4), count.jumps_to(5)), (1, 0));
            // Near the limit, the count moves out (into the trace) and starts again.
            count.jumps.store(GOTO_SPILL - 1, Ordering::Relaxed);
            assert!(count.count(4, writers, |n| spilled.push(n)));
            assert!(spilled.is_empty());
            assert!(count.count(4, writers, |n| spilled.push(n)));
            assert_eq!((spilled, count.jumps_to(4)), (vec![GOTO_SPILL + 1], 0));
            assert!(count.count(4, writers, |_| unreachable!()));
            assert_eq!(count.jumps_to(4), 1, "{writers:?}");
            assert!(!count.is_clean());
        }
    }

    #[test]
    fn a_task_s_joins_are_reset_when_first_touched_and_those_holding_outcomes_at_the_end() {
        let mut task = TaskCells::default();
        let value: Arc<dyn Any + Send + Sync> = Arc::new(7_u32);
        // A run: a join whose listener does not read outcomes fires at place 0; one whose
        // listener does keeps a member's outcome at place 1.
        let plain = task.join_at(0, 2, true, false);
        plain.ready = 2;
        plain.delivered = 2;
        for slot in plain.slots.iter_mut() {
            slot.completed = true;
            slot.delivered = true;
        }
        let valued = task.join_at(1, 2, true, true);
        valued.ready = 1;
        valued.slots[0].completed = true;
        valued.slots[0].latest = Some(Latest::value_of(AnyValue::from(value.clone())));
        assert_eq!(Arc::strong_count(&value), 2);
        // Its end: the outcome is dropped with the run; the other join's marks stay.
        task.reset(0);
        assert_eq!(
            Arc::strong_count(&value),
            1,
            "a join's outcome outlived its run"
        );
        assert!(task.is_clean());
        assert!(task.joins[1].is_clean());
        assert_eq!(task.joins[0].ready, 2);
        // The next run touches a join of three first: it finds the place clean, and keeps
        // what it records there for the rest of the run.
        assert!(task.join_at(0, 3, true, false).is_clean());
        task.join_at(0, 3, false, false).ready = 1;
        assert_eq!(task.join_at(0, 3, false, false).ready, 1);
    }

    #[test]
    fn a_packed_join_reads_as_untouched_in_every_later_run_over_its_cells() {
        let mut cells = Cells::new(0, [(3_usize, false), (2, false)].into_iter());
        let sets =
            |cells: &Cells, join| cells.update_packed(join, Writers::Many, |c, d| (c, d, (c, d)));
        for writers in [Writers::Many, Writers::One] {
            // A run: member 0 of join 0 completes, then member 2, which fires it.
            let seen = cells.update_packed(0, writers, |c, d| (c | 0b001, d, (c, d)));
            assert_eq!(seen, Some((0, 0)), "{writers:?}: the run's first touch");
            let seen = cells.update_packed(0, writers, |c, _| (c | 0b100, 0b101, (c, 0)));
            assert_eq!(seen, Some((0b001, 0)), "{writers:?}: what the run recorded");
            assert_eq!(sets(&cells, 0), Some((0b101, 0b101)));
            assert_eq!(sets(&cells, 1), Some((0, 0)), "another join is apart");
            assert_eq!(sets(&cells, 2), None, "no such join");
            // The next run over these cells: untouched, with no reset of the join.
            cells.reset(false, &[false, false]);
            assert_eq!(sets(&cells, 0), Some((0, 0)), "{writers:?}: the next run");
            cells.reset(false, &[false, false]);
        }
        // When the runs' marks wrap around, the words are cleared: a word written under a
        // mark is never read by a later run under the same mark.
        cells.update_packed(1, Writers::One, |_, _| (0b11, 0b11, ()));
        let written_under = cells.epoch;
        for _ in 0..u16::MAX {
            cells.reset(false, &[false, false]);
        }
        assert_eq!(cells.epoch, written_under, "the marks went round once");
        assert_eq!(
            cells.packed[1].0.load(Ordering::Relaxed),
            0,
            "cleared as they wrapped"
        );
        assert_eq!(sets(&cells, 1), Some((0, 0)));
    }

    #[test]
    fn a_counted_join_counts_first_completions_down_and_its_last_member_completes_it() {
        // Join 0 counts down (30 members); join 1 (3 members, whose listener reads them:
        // not packed, too narrow to count down) does not.
        let mut cells = Cells::new(0, [(30_usize, false), (3, true)].into_iter());
        let count =
            |cells: &Cells, join, member| cells.count_member(join, member, 30, &Latest::ABORT);
        for run in 0..3 {
            for member in 0..29 {
                let counted = count(&cells, 0, member);
                assert_eq!(counted, MemberCount::Counted, "run {run}, member {member}");
            }
            assert_eq!(count(&cells, 0, 3), MemberCount::Again);
            assert_eq!(cells.join_ready(0), 29);
            assert_eq!(count(&cells, 0, 29), MemberCount::Completes);
            cells.counted(0, 29);
            assert_eq!(count(&cells, 0, 29), MemberCount::Again);
            assert_eq!(count(&cells, 0, 0), MemberCount::Again);
            assert_eq!(cells.join_ready(0), 30);
            assert_eq!(count(&cells, 1, 0), MemberCount::Uncounted);
            assert_eq!(count(&cells, 2, 0), MemberCount::Uncounted, "no join");
            assert_eq!(count(&cells, 0, 30), MemberCount::Uncounted, "no member");
            // The next run over these cells starts from none, with no reset of the words.
            cells.reset(false, &[false, true]);
            assert_eq!(cells.join_ready(0), 0, "run {run}");
        }
        // When the runs' marks wrap around, the words are cleared: a word written under a
        // mark is never read by a later run under the same mark.
        assert_eq!(count(&cells, 0, 7), MemberCount::Counted);
        let written_under = cells.epoch;
        for _ in 0..u16::MAX {
            cells.reset(false, &[false, true]);
        }
        assert_eq!(cells.epoch, written_under, "the marks went round once");
        let countdown = &cells.groups[0].countdown;
        assert_eq!(countdown.firsts[7].load(Ordering::Relaxed), 0);
        assert_eq!(countdown.ready.load(Ordering::Relaxed), 0);
        assert_eq!(count(&cells, 0, 7), MemberCount::Counted);
    }

    #[test]
    fn a_counted_join_keeps_its_members_outcomes_apart_and_drops_them_at_the_run_s_end() {
        let mut cells = Cells::new(0, [(25_usize, true)].into_iter());
        let value: Arc<dyn Any + Send + Sync> = Arc::new(7_u32);
        let seven = Latest::value_of(AnyValue::from(value.clone()));
        assert_eq!(cells.count_member(0, 3, 25, &seven), MemberCount::Counted);
        assert_eq!(Arc::strong_count(&value), 3, "kept as it was counted");
        assert!(cells.kept_outcome(0, 3).is_some_and(|kept| kept.is_value()));
        assert!(
            cells.kept_outcome(0, 4).is_none(),
            "member 4 has not completed"
        );
        // A later completion's outcome, kept under the join's lock in a run.
        assert_eq!(
            cells.count_member(0, 3, 25, &Latest::ABORT),
            MemberCount::Again
        );
        cells.keep_outcome(0, 3, &Latest::ABORT);
        assert!(cells
            .kept_outcome(0, 3)
            .is_some_and(|kept| !kept.is_value()));
        assert_eq!(Arc::strong_count(&value), 2);
        cells.keep_outcome(0, 5, &seven);
        // Listed as touched by its first count: its outcomes are dropped with the run.
        assert_eq!(cells.touched_groups.ids().collect::<Vec<_>>(), [0]);
        cells.reset(false, &[true]);
        assert_eq!(Arc::strong_count(&value), 2, "only `seven` holds it");
        assert!(cells.is_clean());
    }

    #[test]
    fn members_of_a_counted_join_ending_on_four_threads_complete_it_once_per_run() {
        const MEMBERS: usize = 64;
        let mut cells = Cells::new(0, [(MEMBERS, false)].into_iter());
        for run in 0..200 {
            let counts: Vec<MemberCount> = std::thread::scope(|scope| {
                let cells = &cells;
                let threads: Vec<_> = (0..4)
                    .map(|thread| {
                        scope.spawn(move || {
                            // Each thread its quarter of the members, each twice: the
                            // second completion of a member comes after its first.
                            let mine: Vec<usize> = (thread..MEMBERS).step_by(4).collect();
                            let mut counts = Vec::new();
                            for &member in mine.iter().chain(&mine) {
                                let count =
                                    cells.count_member(0, member, MEMBERS as u32, &Latest::ABORT);
                                if count == MemberCount::Completes {
                                    cells.counted(0, member);
                                }
                                counts.push(count);
                            }
                            counts
                        })
                    })
                    .collect();
                threads
                    .into_iter()
                    .flat_map(|thread| thread.join().unwrap_or_default())
                    .collect()
            });
            let of = |kind| counts.iter().filter(|&&count| count == kind).count();
            assert_eq!(of(MemberCount::Completes), 1, "run {run}");
            assert_eq!(of(MemberCount::Counted), MEMBERS - 1, "run {run}");
            assert_eq!(of(MemberCount::Again), MEMBERS, "run {run}");
            cells.reset(false, &[false]);
        }
    }

    #[test]
    fn a_later_completion_of_the_member_that_completes_a_counted_join_waits_until_it_is_recorded() {
        let cells = Cells::new(0, [(25_usize, false)].into_iter());
        for member in 0..24 {
            assert_eq!(
                cells.count_member(0, member, 25, &Latest::ABORT),
                MemberCount::Counted
            );
        }
        assert_eq!(
            cells.count_member(0, 24, 25, &Latest::ABORT),
            MemberCount::Completes
        );
        let recorded = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            // The member's event, run again, ends on another thread while its first
            // completion is being recorded (under the join's lock, in a run).
            let later = scope.spawn(|| {
                let count = cells.count_member(0, 24, 25, &Latest::ABORT);
                (count, recorded.load(Ordering::Acquire))
            });
            std::thread::sleep(std::time::Duration::from_millis(100));
            recorded.store(true, Ordering::Release);
            cells.counted(0, 24);
            let (count, after) = later.join().unwrap_or((MemberCount::Uncounted, false));
            assert_eq!(count, MemberCount::Again);
            assert!(
                after,
                "the later completion came before the first was recorded"
            );
        });
    }

    #[test]
    fn a_join_s_cell_is_reset_when_a_run_first_locks_it_and_at_the_end_if_it_holds_outcomes() {
        let mut cells = Cells::new(0, [(2_usize, false), (2, false)].into_iter());
        // A run: join 0 (its listener reads no outcome) fires; join 1 keeps an outcome.
        {
            let mut state = cells.lock_group(0, Writers::Many);
            state.ready = 2;
            state.delivered = 2;
        }
        let value: Arc<dyn Any + Send + Sync> = Arc::new(7_u32);
        {
            let mut state = cells.lock_group(1, Writers::Many);
            state.ready = 1;
            state.slots[0].completed = true;
            state.slots[0].latest = Some(Latest::value_of(AnyValue::from(value.clone())));
        }
        cells.reset(false, &[false, true]);
        assert_eq!(
            Arc::strong_count(&value),
            1,
            "a join's outcome outlived its run"
        );
        assert!(cells.is_clean());
        // The next run finds join 0 clean when it first locks it, and keeps what it
        // records there.
        assert!(cells.lock_group(0, Writers::Many).is_clean());
        cells.lock_group(0, Writers::Many).ready = 1;
        assert_eq!(cells.lock_group(0, Writers::Many).ready, 1);
    }

    #[test]
    fn a_tasks_outcomes_are_reused_in_place_and_clean_after_a_reset() {
        // An inline run's task writes its events' outcomes where an earlier run's were:
        // after a reset, every one is clean, the places are kept, and none is pushed again.
        let mut task = TaskCells::default();
        let value: Arc<dyn Any + Send + Sync> = Arc::new(7_u32);
        for at in [0, 1, 3] {
            let outcome = task.outcome_at(at);
            outcome.completions += 1;
            outcome.latest = Some(Latest::value_of(AnyValue::from(value.clone())));
        }
        assert!(task.outcome_at(2).latest.is_none(), "one past its place");
        assert_eq!(Arc::strong_count(&value), 4);
        // A run that failed: its outcomes were never taken.
        task.reset(4);
        assert!(task.is_clean());
        assert_eq!(Arc::strong_count(&value), 1, "the outcomes dropped");
        let kept = task.outcomes.as_ptr();
        let outcome = task.outcome_at(3);
        assert_eq!((outcome.completions, outcome.latest.is_none()), (0, true));
        assert_eq!((task.outcomes.len(), task.outcomes.as_ptr()), (4, kept));
        // A run that took them (as `Results` does) leaves them clean as well.
        task.outcome_at(0).completions = 2;
        assert!(task
            .take_outcome(0)
            .is_some_and(|taken| taken.completions == 2));
        assert!(task.is_clean());
    }

    #[test]
    fn an_events_cell_fits_a_cache_line() {
        // A large run reads and resets one cell per event it touched: one line each.
        assert!(std::mem::size_of::<super::NodeCell>() <= 64);
    }

    #[test]
    fn one_writer_and_many_count_alike() {
        for writers in [Writers::One, Writers::Many] {
            let count = AtomicU32::new(0);
            let held: Vec<u32> = (0..3)
                .map(|_| writers.add(&count, 1, Ordering::Relaxed))
                .collect();
            assert_eq!((held, count.load(Ordering::Relaxed)), (vec![0, 1, 2], 3));
            // Taken away by adding its wrapping negation, as `fetch_add` wraps.
            let in_flight = AtomicUsize::new(2);
            assert_eq!(writers.add(&in_flight, 3, Ordering::Relaxed), 2);
            assert_eq!(
                writers.add(&in_flight, 1_usize.wrapping_neg(), Ordering::AcqRel),
                5
            );
            assert_eq!(in_flight.load(Ordering::Relaxed), 4, "{writers:?}");
        }
    }
}
