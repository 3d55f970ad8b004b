//! Coalesced acknowledgements: one `basic.ack` with `multiple = true` for a
//! run of settled deliveries instead of one frame each.
//!
//! RabbitMQ's work per ack frame bounds how fast a queue drains; acking a
//! hundred deliveries with one frame cuts it. `multiple = true` at tag `T`
//! settles *every* delivery of the channel still unacked with a tag up to
//! `T`, so a frame may cover a delivery only if warren has settled it: the
//! [`Coalescer`] extends a run only over deliveries it was told were
//! received and then settled, in numeric order from the lowest one not yet
//! told to the broker. A delivery still running (or one never registered,
//! or a different outcome) ends the run; settled deliveries behind it are
//! sent one by one, as before coalescing, so a long job does not hold the
//! prefetch window of the ones that finished after it.
//!
//! The [`Acks`] of a channel sends what the coalescer decides: the task
//! that settles a delivery on an idle channel sends its frame itself, at
//! once (no timer, no task in between); deliveries that settle while a
//! frame is on its way to the socket gather into the next one, which the
//! same task sends. Each settling
//! task learns whether the frame covering its delivery was sent; when the
//! channel dies, no later frame is sent and RabbitMQ redelivers whatever it
//! did not get an ack for.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use tokio::sync::oneshot;
use tracing::debug;

/// A delivery tag: per channel, from 1, one more per delivery.
pub(crate) type Tag = u64;

/// What a settled delivery tells the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "warren settles every delivery by an ack today; nacks and rejects keep their place in the order for when it does not"
    )
)]
pub(crate) enum Settlement {
    /// Done with: `basic.ack`.
    Ack,
    /// `basic.nack`, put back in the queue or not.
    Nack { requeue: bool },
    /// `basic.reject`, which has no `multiple`.
    Reject { requeue: bool },
}

/// One frame to send, and the deliveries it settles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The highest tag it covers (the one it names).
    pub(crate) tag: Tag,
    /// Whether it names `multiple = true`.
    pub(crate) multiple: bool,
    pub(crate) settlement: Settlement,
    /// The lowest tag it settles: it settles `first..=tag`, each one
    /// registered and settled (or acked alone before, then not again).
    pub(crate) first: Tag,
}

impl Frame {
    /// The deliveries it settles.
    pub(crate) fn covers(&self) -> std::ops::RangeInclusive<Tag> {
        self.first..=self.tag
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Settled(Settlement),
    /// Sent alone, ahead of a delivery still running.
    Sent,
}

/// Which frames settle which deliveries, given the order they were received
/// and settled in. Pure bookkeeping: it sends nothing.
#[derive(Debug, Default)]
pub(crate) struct Coalescer {
    /// Every tag up to this one is told to the broker (or was never ours).
    told_through: Tag,
    /// Registered deliveries above `told_through`.
    deliveries: BTreeMap<Tag, State>,
}

impl Coalescer {
    /// A delivery was taken from the consumer: it may be covered only once settled.
    pub(crate) fn received(&mut self, tag: Tag) {
        if tag > self.told_through {
            self.deliveries.insert(tag, State::Running);
        }
    }

    /// A received delivery is settled. Unknown tags are ignored: a frame is
    /// never sent for a delivery this channel did not register.
    pub(crate) fn settled(&mut self, tag: Tag, settlement: Settlement) {
        if let Some(state @ State::Running) = self.deliveries.get_mut(&tag) {
            *state = State::Settled(settlement);
        }
    }

    /// How many deliveries are registered and not yet told to the broker.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.deliveries
            .values()
            .filter(|state| !matches!(state, State::Sent))
            .count()
    }

    /// The frames that settle everything settled so far, in the order to send them.
    pub(crate) fn take_frames(&mut self) -> Vec<Frame> {
        let mut frames: Vec<Frame> = Vec::new();
        // The run from the lowest delivery not yet told: each frame may
        // cover, besides its own deliveries, only ones already sent alone.
        loop {
            let next = self.told_through + 1;
            let Some(&state) = self.deliveries.get(&next) else {
                break;
            };
            match state {
                State::Running => break,
                State::Sent => {}
                State::Settled(settlement) => match frames.last_mut() {
                    Some(last) if last.tag + 1 == next && joins(last.settlement, settlement) => {
                        last.tag = next;
                        last.multiple = true;
                    }
                    _ => frames.push(Frame {
                        tag: next,
                        multiple: false,
                        settlement,
                        first: next,
                    }),
                },
            }
            self.deliveries.remove(&next);
            self.told_through = next;
        }
        // Behind a running delivery: one frame each, never `multiple`.
        for (&tag, state) in &mut self.deliveries {
            if let State::Settled(settlement) = *state {
                frames.push(Frame {
                    tag,
                    multiple: false,
                    settlement,
                    first: tag,
                });
                *state = State::Sent;
            }
        }
        frames
    }
}

/// Whether `next` may join a run of `run`: same method, and one that has
/// `multiple` (rejects do not).
fn joins(run: Settlement, next: Settlement) -> bool {
    match (run, next) {
        (Settlement::Ack, Settlement::Ack) => true,
        (Settlement::Nack { requeue: a }, Settlement::Nack { requeue: b }) => a == b,
        _ => false,
    }
}

/// The acknowledgements of one channel: register each delivery as it is
/// taken from the consumer, settle it when its outcome is settled.
///
/// Lives on the channel's worker thread (its jobs are local tasks). The
/// task whose settlement finds no frame on its way sends the frames itself,
/// and keeps sending what settles meanwhile; the others wait for its word.
/// So an idle channel acks at once, with no task in between.
#[derive(Debug, Clone)]
pub(crate) struct Acks {
    channel: Rc<RefCell<Channel>>,
    /// The AMQP channel the deliveries came on. Frames go out through it
    /// straight from the settling task: one write handed to lapin's I/O
    /// loop, one answer back. A delivery's `Acker` would route each through
    /// lapin's internal RPC task and a task it spawns, both on the
    /// connection's runtime (`warren-io`), not the worker's thread: two
    /// more thread wake-ups per frame (measured: 3 of warren's 6.8
    /// voluntary context switches per job at prefetch 1).
    amqp: lapin::Channel,
}

#[derive(Debug, Default)]
struct Channel {
    coalescer: Coalescer,
    /// Settled deliveries not yet covered by a sent frame: how to tell
    /// their tasks (none for the sending task's own).
    waiting: BTreeMap<Tag, Option<oneshot::Sender<bool>>>,
    /// A task is sending frames.
    sending: bool,
}

/// Ends a sending turn even if its task is dropped mid-send (at teardown):
/// the next settlement then sends.
struct Turn<'a>(&'a RefCell<Channel>);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().sending = false;
    }
}

impl Acks {
    /// The acknowledgements of deliveries consumed on `amqp`.
    pub(crate) fn new(amqp: lapin::Channel) -> Self {
        Acks {
            channel: Rc::default(),
            amqp,
        }
    }

    /// Registers a delivery taken from the consumer, before it is settled.
    pub(crate) fn received(&self, tag: Tag) {
        self.channel.borrow_mut().coalescer.received(tag);
    }

    /// Settles delivery `tag`; `true` once the frame covering it was
    /// handed to the connection, `false` if the channel was gone first.
    pub(crate) async fn settle(&self, tag: Tag, settlement: Settlement) -> bool {
        let answer = {
            let mut channel = self.channel.borrow_mut();
            channel.coalescer.settled(tag, settlement);
            if channel.sending {
                let (sent, answer) = oneshot::channel();
                channel.waiting.insert(tag, Some(sent));
                Some(answer)
            } else {
                channel.waiting.insert(tag, None);
                channel.sending = true;
                None
            }
        };
        match answer {
            Some(answer) => answer.await.unwrap_or(false),
            None => self.send_turn(tag).await,
        }
    }

    /// Sends frames until nothing settled is left; answers every covered
    /// delivery's task, and returns what became of `own`.
    async fn send_turn(&self, own: Tag) -> bool {
        let _turn = Turn(&self.channel);
        let mut own_sent = false;
        loop {
            let frames = self.channel.borrow_mut().coalescer.take_frames();
            if frames.is_empty() {
                return own_sent;
            }
            // One after the other, each on the wire before the next: RabbitMQ
            // applies `multiple` to every delivery still unacked up to its
            // tag, so a later frame overtaking an earlier one acks the
            // earlier frame's delivery first, and the earlier frame then
            // fails the channel with "unknown delivery tag". What settles
            // meanwhile gathers into the next frames.
            let mut results = Vec::with_capacity(frames.len());
            for frame in &frames {
                results.push(send(&self.amqp, frame).await);
            }
            let mut channel = self.channel.borrow_mut();
            for (frame, sent) in frames.iter().zip(results) {
                for tag in frame.covers() {
                    match channel.waiting.remove(&tag) {
                        Some(Some(answer)) => {
                            let _ = answer.send(sent);
                        }
                        Some(None) if tag == own => own_sent = sent,
                        _ => {}
                    }
                }
            }
        }
    }
}

/// Sends one frame on `amqp`: `true` once lapin has written it.
async fn send(amqp: &lapin::Channel, frame: &Frame) -> bool {
    let (tag, multiple) = (frame.tag, frame.multiple);
    let sent = match frame.settlement {
        Settlement::Ack => amqp.basic_ack(tag, BasicAckOptions { multiple }).await,
        Settlement::Nack { requeue } => amqp.basic_nack(tag, BasicNackOptions { multiple, requeue }).await,
        Settlement::Reject { requeue } => amqp.basic_reject(tag, BasicRejectOptions { requeue }).await,
    };
    match sent {
        Ok(()) => true,
        Err(error) => {
            // Each delivery it covered says so in its own job's log.
            debug!(%error, tag = frame.tag, multiple, "acknowledgement frame not sent");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACK: Settlement = Settlement::Ack;
    const NACK: Settlement = Settlement::Nack { requeue: false };
    const REQUEUE: Settlement = Settlement::Nack { requeue: true };
    const REJECT: Settlement = Settlement::Reject { requeue: false };

    fn frame(tag: Tag, settlement: Settlement, covers: &[Tag]) -> Frame {
        assert!(covers.windows(2).all(|pair| pair[0] + 1 == pair[1]));
        Frame {
            tag,
            multiple: covers.len() > 1,
            settlement,
            first: covers[0],
        }
    }

    fn received(tags: std::ops::RangeInclusive<Tag>) -> Coalescer {
        let mut coalescer = Coalescer::default();
        for tag in tags {
            coalescer.received(tag);
        }
        coalescer
    }

    #[test]
    fn contiguous_acks_go_out_as_one_multiple_ack() {
        let mut coalescer = received(1..=5);
        for tag in 1..=5 {
            coalescer.settled(tag, ACK);
        }
        assert_eq!(coalescer.take_frames(), vec![frame(5, ACK, &[1, 2, 3, 4, 5])]);
        assert_eq!(coalescer.pending(), 0);
        assert_eq!(coalescer.take_frames(), vec![]);
    }

    #[test]
    fn a_lone_ack_is_not_multiple() {
        let mut coalescer = received(1..=1);
        coalescer.settled(1, ACK);
        let frames = coalescer.take_frames();
        assert_eq!(frames, vec![frame(1, ACK, &[1])]);
        assert!(!frames[0].multiple);
    }

    #[test]
    fn nothing_is_sent_for_running_deliveries() {
        let mut coalescer = received(1..=3);
        assert_eq!(coalescer.take_frames(), vec![]);
        assert_eq!(coalescer.pending(), 3);
    }

    #[test]
    fn a_running_delivery_ends_the_run_and_the_ones_behind_it_go_alone() {
        let mut coalescer = received(1..=6);
        for tag in [1, 2, 4, 6] {
            coalescer.settled(tag, ACK);
        }
        // 3 and 5 still run: a multiple ack at 4 or 6 would settle them.
        assert_eq!(
            coalescer.take_frames(),
            vec![frame(2, ACK, &[1, 2]), frame(4, ACK, &[4]), frame(6, ACK, &[6])]
        );
        assert!(coalescer.take_frames().is_empty());
        // 3 settles: 4 was sent already, so the run covers 3 and stops at 5.
        coalescer.settled(3, ACK);
        assert_eq!(coalescer.take_frames(), vec![frame(3, ACK, &[3])]);
        coalescer.settled(5, ACK);
        assert_eq!(coalescer.take_frames(), vec![frame(5, ACK, &[5])]);
        assert_eq!(coalescer.pending(), 0);
    }

    #[test]
    fn out_of_order_completion_still_coalesces_once_the_gap_closes() {
        let mut coalescer = received(1..=4);
        for tag in [4, 3, 2] {
            coalescer.settled(tag, ACK);
        }
        coalescer.settled(1, ACK);
        assert_eq!(coalescer.take_frames(), vec![frame(4, ACK, &[1, 2, 3, 4])]);
    }

    #[test]
    fn a_run_never_crosses_an_unregistered_tag() {
        // Tag 3 was never taken from the consumer: the broker may still
        // count it unacked, so no multiple ack may reach past it.
        let mut coalescer = Coalescer::default();
        for tag in [1, 2, 4, 5] {
            coalescer.received(tag);
            coalescer.settled(tag, ACK);
        }
        assert_eq!(
            coalescer.take_frames(),
            vec![frame(2, ACK, &[1, 2]), frame(4, ACK, &[4]), frame(5, ACK, &[5])]
        );
    }

    #[test]
    fn settling_an_unknown_or_already_settled_tag_sends_nothing_more() {
        let mut coalescer = received(1..=1);
        coalescer.settled(7, ACK);
        assert!(coalescer.take_frames().is_empty());
        coalescer.settled(1, ACK);
        coalescer.settled(1, NACK);
        assert_eq!(coalescer.take_frames(), vec![frame(1, ACK, &[1])]);
        coalescer.settled(1, ACK);
        assert!(coalescer.take_frames().is_empty());
    }

    #[test]
    fn mixed_outcomes_keep_their_order_and_their_method() {
        let mut coalescer = received(1..=9);
        let outcomes = [ACK, ACK, NACK, NACK, REQUEUE, REJECT, REJECT, ACK, ACK];
        // Settled in reverse: the order of settling does not matter.
        for (tag, outcome) in (1..10u32)
            .map(Tag::from)
            .zip(outcomes)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            coalescer.settled(tag, outcome);
        }
        assert_eq!(
            coalescer.take_frames(),
            vec![
                frame(2, ACK, &[1, 2]),
                frame(4, NACK, &[3, 4]),
                frame(5, REQUEUE, &[5]),
                // basic.reject has no `multiple`.
                frame(6, REJECT, &[6]),
                frame(7, REJECT, &[7]),
                frame(9, ACK, &[8, 9]),
            ]
        );
    }

    #[test]
    fn every_settled_delivery_is_covered_exactly_once_and_no_running_one_ever() {
        // A deterministic shuffle of completions over 200 deliveries, with
        // frames taken between settlements.
        let mut coalescer = received(1..=200);
        let mut order: Vec<Tag> = (1..=200).collect();
        let mut seed = 0x2545_f491_u64;
        for i in (1..order.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(i, usize::try_from(seed % (i as u64 + 1)).unwrap());
        }
        let mut settled = std::collections::BTreeSet::new();
        let mut covered = std::collections::BTreeSet::new();
        for (step, tag) in order.into_iter().enumerate() {
            let outcome = if tag % 7 == 0 { REQUEUE } else { ACK };
            coalescer.settled(tag, outcome);
            settled.insert(tag);
            if step % 3 == 0 {
                for frame in coalescer.take_frames() {
                    // What the broker settles: everything unacked up to
                    // the tag if multiple, else the tag alone.
                    let broker: Vec<Tag> = if frame.multiple {
                        (1..=frame.tag).filter(|tag| !covered.contains(tag)).collect()
                    } else {
                        vec![frame.tag]
                    };
                    assert_eq!(broker, frame.covers().collect::<Vec<_>>(), "{frame:?}");
                    for tag in broker {
                        assert!(settled.contains(&tag), "{tag} covered before it settled");
                        assert!(covered.insert(tag), "{tag} covered twice");
                    }
                }
            }
        }
        for frame in coalescer.take_frames() {
            for tag in frame.covers() {
                assert!(covered.insert(tag));
            }
        }
        assert_eq!(covered.len(), 200);
    }
}
