//! The boxes an inline run makes its events' body futures in, reused from one event to the
//! next of the same body: the future is made in its box and polled there, without
//! `unsafe`.
//!
//! A box holds the future of one body type, `Pin<Box<Option<F>>>`: the next call of that
//! body drops the ended future in place (`None`), makes its own in the same allocation
//! (`Some`) and polls it there, where its type is known.

use std::any::{Any, TypeId};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;

use crate::body::param::CallOutput;

/// A box holding the future of one body type, polled and refilled through this trait.
trait CallSlot: Send {
    /// Poll the future the box holds (pending if it holds none: not polled then).
    fn poll_call(&mut self, cx: &mut Context<'_>) -> Poll<CallOutput>;

    /// The box itself, for a call of its body type to find it ([`CallBoxes::call`]).
    fn as_any(&mut self) -> &mut dyn Any;
}

impl<F> CallSlot for Pin<Box<Option<F>>>
where
    F: Future<Output = CallOutput> + Send + 'static,
{
    fn poll_call(&mut self, cx: &mut Context<'_>) -> Poll<CallOutput> {
        poll_in(self.as_mut(), cx)
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

/// Poll the future a box holds (pending if it holds none: not polled then).
#[inline]
fn poll_in<F: Future>(slot: Pin<&mut Option<F>>, cx: &mut Context<'_>) -> Poll<F::Output> {
    match slot.as_pin_mut() {
        Some(future) => future.poll(cx),
        None => Poll::Pending,
    }
}

/// The future of one call of an event body, in the box it was made in: an inline event
/// that goes pending takes it into its task.
pub(crate) struct ReusedCall(Box<dyn CallSlot>);

impl ReusedCall {
    /// The future of a boxed call, in a box of its own (a task that makes its body
    /// without polling it: not an inline event's first poll).
    pub(crate) fn boxed(future: BoxFuture<'static, CallOutput>) -> Self {
        let slot: Pin<Box<Option<BoxFuture<'static, CallOutput>>>> = Box::pin(Some(future));
        ReusedCall(Box::new(slot))
    }
}

impl Future for ReusedCall {
    type Output = CallOutput;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CallOutput> {
        self.get_mut().0.poll_call(cx)
    }
}

/// The kind of a place of [`CallBoxes`] without a box (`()` is not a future).
fn no_box() -> TypeId {
    TypeId::of::<()>()
}

/// How many body types [`CallBoxes`] keeps a box for. Every `#[event]` function is a body
/// type of its own: a workflow of up to this many events taking turns allocates no box
/// once each has one. (Four, from the twentieth round to the twenty-second, made a run of
/// five or more such events taking turns allocate two per event, a new box and its
/// handle, in place of one of the oldest type: a cycle longer than the boxes misses every
/// time.) Looked through in order, oldest first, on every call: a workflow of a few types
/// finds its boxes among the first.
const CALL_BOXES: usize = 16;

/// The boxes an inline run makes its events' bodies in: one per body type, for the last
/// [`CALL_BOXES`] types made, so that events of different bodies taking turns (a loop of
/// two events, a pipeline of a few stages, an agent's steps) reuse their boxes rather than
/// allocate one each time. Most inline events end at their first poll and leave their box
/// here; one that goes pending takes its box with it.
pub(crate) struct CallBoxes {
    /// The future type each box was made for (apart from the boxes: looked through on
    /// every call); [`no_box`] for none.
    kinds: [TypeId; CALL_BOXES],
    boxes: [Option<Box<dyn CallSlot>>; CALL_BOXES],
    /// The box to give a new type (the oldest one given).
    next: usize,
    /// The box of the last call made.
    last: usize,
    /// The size of the future of the last call made (tests).
    #[cfg(test)]
    last_size: usize,
}

impl Default for CallBoxes {
    fn default() -> Self {
        CallBoxes {
            kinds: [no_box(); CALL_BOXES],
            boxes: std::array::from_fn(|_| None),
            next: 0,
            last: 0,
            #[cfg(test)]
            last_size: 0,
        }
    }
}

impl CallBoxes {
    /// Make the future `make` gives the last call and poll it once: in the box kept for
    /// its type (the future it held, which has ended, is dropped first, then the new one
    /// is made in its place), or else in a new box, in the place of the oldest one given.
    /// If `make` panics, the box is left empty.
    #[inline]
    pub(crate) fn call<F>(
        &mut self,
        make: impl FnOnce() -> F,
        cx: &mut Context<'_>,
    ) -> Poll<CallOutput>
    where
        F: Future<Output = CallOutput> + Send + 'static,
    {
        const { assert!(CALL_BOXES.is_power_of_two()) };
        let kind = TypeId::of::<F>();
        let at = match self.kinds.iter().position(|&kept| kept == kind) {
            Some(at) => at,
            None => {
                let at = self.next % CALL_BOXES;
                self.next = at + 1;
                self.kinds[at] = kind;
                self.boxes[at] = None;
                at
            }
        };
        self.last = at;
        #[cfg(test)]
        {
            self.last_size = std::mem::size_of::<F>();
        }
        let kept = self.boxes[at]
            .as_mut()
            .and_then(|slot| slot.as_any().downcast_mut::<Pin<Box<Option<F>>>>());
        match kept {
            Some(slot) => {
                slot.set(None);
                slot.set(Some(make()));
                poll_in(slot.as_mut(), cx)
            }
            None => {
                let mut slot: Pin<Box<Option<F>>> = Box::pin(Some(make()));
                let polled = poll_in(slot.as_mut(), cx);
                self.boxes[at] = Some(Box::new(slot));
                polled
            }
        }
    }

    /// The box of the last call, for an event that keeps its body (it went pending) or
    /// drops it now (it panicked); `None` if there is none (a body whose first call
    /// panicked before its future was made; one whose later call did leaves its box
    /// empty). The next call of its type makes a new box.
    pub(crate) fn take_last(&mut self) -> Option<ReusedCall> {
        let at = self.last % CALL_BOXES;
        self.kinds[at] = no_box();
        self.boxes[at].take().map(ReusedCall)
    }

    /// The size of the future of the last call (tests).
    #[cfg(test)]
    pub(crate) fn last_size(&self) -> usize {
        self.last_size
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use futures::task::noop_waker_ref;

    use super::*;
    use crate::core::flow::Flow;

    /// A body's future that ends at once (or stays pending), counting its drops in `drops`.
    struct Body {
        pending: bool,
        drops: Arc<AtomicUsize>,
    }

    impl Future for Body {
        type Output = CallOutput;

        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<CallOutput> {
            if self.pending {
                Poll::Pending
            } else {
                Poll::Ready(Ok(Flow::Abort))
            }
        }
    }

    impl Drop for Body {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Another body type, of the same size.
    struct Other(Body);

    impl Future for Other {
        type Output = CallOutput;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CallOutput> {
            // `Body` is `Unpin`.
            Pin::new(&mut self.get_mut().0).poll(cx)
        }
    }

    /// Where the future of the last call lies.
    fn last_address(boxes: &mut CallBoxes) -> Option<usize> {
        let at = boxes.last % CALL_BOXES;
        let slot = boxes.boxes[at].as_mut()?;
        let kept = slot.as_any().downcast_mut::<Pin<Box<Option<Body>>>>()?;
        Some(&**kept as *const Option<Body> as usize)
    }

    fn body(pending: bool, drops: &Arc<AtomicUsize>) -> Body {
        Body {
            pending,
            drops: drops.clone(),
        }
    }

    #[test]
    fn a_body_s_next_call_is_made_in_its_box_once_the_last_one_is_dropped() {
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut boxes = CallBoxes::default();
        let drops = Arc::new(AtomicUsize::new(0));
        assert!(boxes.call(|| body(false, &drops), &mut cx).is_ready());
        let first = last_address(&mut boxes);
        assert!(first.is_some());
        // The ended future is dropped before the next one is made, in the same box.
        let seen = Rc::new(Cell::new(usize::MAX));
        let made = || {
            seen.set(drops.load(Ordering::Relaxed));
            body(false, &drops)
        };
        assert!(boxes.call(made, &mut cx).is_ready());
        assert_eq!(seen.get(), 1, "the ended future was dropped first");
        assert_eq!(last_address(&mut boxes), first, "the box was reused");
        // Another body takes another box, and leaves this one as it is.
        assert!(boxes
            .call(|| Other(body(false, &drops)), &mut cx)
            .is_ready());
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        assert!(boxes.call(|| body(false, &drops), &mut cx).is_ready());
        assert_eq!(last_address(&mut boxes), first);
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_call_that_goes_pending_takes_its_box_and_keeps_its_future() {
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut boxes = CallBoxes::default();
        let drops = Arc::new(AtomicUsize::new(0));
        assert!(boxes.call(|| body(true, &drops), &mut cx).is_pending());
        let Some(mut taken) = boxes.take_last() else {
            panic!("a pending call leaves its future in its box");
        };
        assert!(last_address(&mut boxes).is_none());
        assert!(Pin::new(&mut taken).poll(&mut cx).is_pending());
        // The next call of that body makes a new box; the taken one still holds its future.
        assert!(boxes.call(|| body(false, &drops), &mut cx).is_ready());
        assert!(last_address(&mut boxes).is_some());
        assert_eq!(drops.load(Ordering::Relaxed), 0);
        drop(taken);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_call_whose_future_panics_while_made_leaves_its_box_empty() {
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut boxes = CallBoxes::default();
        let drops = Arc::new(AtomicUsize::new(0));
        assert!(boxes.call(|| body(false, &drops), &mut cx).is_ready());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            boxes.call(|| -> Body { panic!("made") }, &mut cx)
        }));
        assert!(panicked.is_err());
        // The ended future was dropped; the box holds none, and is made again.
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        assert!(boxes
            .take_last()
            .is_some_and(|mut empty| Pin::new(&mut empty).poll(&mut cx).is_pending()));
        assert!(boxes.call(|| body(false, &drops), &mut cx).is_ready());
    }
}
