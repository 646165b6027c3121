//! The in-process bus: nodes in one process, on tokio channels, for
//! lockstep runs where plant and controller share a process.
//!
//! Like a real CAN bus it is a broadcast medium: a frame one node sends
//! reaches every other node (not the sender), in send order. Queues are
//! unbounded — a lockstep caller drains each step — so `send` never waits
//! and never drops. Besides the [`CanBus`] methods, [`InProcessBus::try_send`]
//! and [`InProcessBus::try_recv`] serve a synchronous caller (a firmware
//! step function that is not async).

use crate::bus::{CanBus, LinkError, LinkStats, TryRecvError};
use crate::frame::CanFrame;
use async_trait::async_trait;
use tokio::sync::mpsc::{self, error::TryRecvError as MpscTryRecv};

/// One node on an in-process bus.
#[derive(Debug)]
pub struct InProcessBus {
    /// Senders to every other node.
    peers: Vec<mpsc::UnboundedSender<CanFrame>>,
    inbox: mpsc::UnboundedReceiver<CanFrame>,
    stats: LinkStats,
}

impl InProcessBus {
    /// Two nodes: what one sends, the other receives.
    pub fn pair() -> (InProcessBus, InProcessBus) {
        let (to_a, inbox_a) = mpsc::unbounded_channel();
        let (to_b, inbox_b) = mpsc::unbounded_channel();
        let node = |peer, inbox| InProcessBus {
            peers: vec![peer],
            inbox,
            stats: LinkStats::default(),
        };
        (node(to_b, inbox_a), node(to_a, inbox_b))
    }

    /// `n` nodes on one bus: each frame sent reaches the `n - 1` others.
    pub fn network(n: usize) -> Vec<InProcessBus> {
        let (senders, inboxes): (Vec<_>, Vec<_>) =
            (0..n).map(|_| mpsc::unbounded_channel()).unzip();
        inboxes
            .into_iter()
            .enumerate()
            .map(|(me, inbox)| InProcessBus {
                peers: senders
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != me)
                    .map(|(_, s)| s.clone())
                    .collect(),
                inbox,
                stats: LinkStats::default(),
            })
            .collect()
    }

    /// Send without waiting (it never has to). Fails only when every other
    /// node has been dropped.
    pub fn try_send(&mut self, frame: &CanFrame) -> Result<(), LinkError> {
        let mut delivered = false;
        for peer in &self.peers {
            delivered |= peer.send(*frame).is_ok();
        }
        if !delivered {
            return Err(LinkError::Disconnected {
                device: "in-process bus".to_owned(),
            });
        }
        self.stats.count_sent(frame);
        Ok(())
    }

    /// The next frame if one is waiting.
    pub fn try_recv(&mut self) -> Result<CanFrame, TryRecvError> {
        match self.inbox.try_recv() {
            Ok(frame) => {
                self.stats.count_received(&frame);
                Ok(frame)
            }
            Err(MpscTryRecv::Empty) => Err(TryRecvError::Empty),
            Err(MpscTryRecv::Disconnected) => Err(TryRecvError::Disconnected),
        }
    }
}

#[async_trait]
impl CanBus for InProcessBus {
    async fn send(&mut self, frame: &CanFrame) -> Result<(), LinkError> {
        self.try_send(frame)
    }

    /// Cancel-safe: `mpsc::UnboundedReceiver::recv` is.
    async fn recv(&mut self) -> Result<CanFrame, LinkError> {
        match self.inbox.recv().await {
            Some(frame) => {
                self.stats.count_received(&frame);
                Ok(frame)
            }
            None => Err(LinkError::Disconnected {
                device: "in-process bus".to_owned(),
            }),
        }
    }

    /// Nothing is buffered: frames are in the peers' queues once sent.
    async fn flush(&mut self) -> Result<(), LinkError> {
        Ok(())
    }

    fn stats(&self) -> LinkStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::CanId;

    fn frame(i: u32) -> CanFrame {
        CanFrame::new(CanId::Standard((i % 0x800) as u16), &i.to_le_bytes()).unwrap()
    }

    #[tokio::test]
    async fn a_pair_carries_frames_both_ways_in_order() {
        let (mut a, mut b) = InProcessBus::pair();
        for i in 0..100 {
            a.send(&frame(i)).await.unwrap();
            b.send(&frame(1000 + i)).await.unwrap();
        }
        a.flush().await.unwrap();
        for i in 0..100 {
            assert_eq!(b.recv().await.unwrap(), frame(i));
            assert_eq!(a.recv().await.unwrap(), frame(1000 + i));
        }
        assert_eq!(b.try_recv(), Err(TryRecvError::Empty));
        let bits: u64 = (0..100)
            .map(|i| u64::from(crate::bit_length(&frame(i)).actual()))
            .sum();
        assert_eq!(a.stats().frames_sent, 100);
        assert_eq!(a.stats().bits_sent, bits);
        assert_eq!(b.stats().frames_received, 100);
        assert_eq!(b.stats().bits_received, bits);
    }

    #[test]
    fn a_synchronous_caller_uses_try_send_and_try_recv() {
        let (mut a, mut b) = InProcessBus::pair();
        a.try_send(&frame(7)).unwrap();
        assert_eq!(b.try_recv(), Ok(frame(7)));
        assert_eq!(b.try_recv(), Err(TryRecvError::Empty));
        drop(a);
        assert_eq!(b.try_recv(), Err(TryRecvError::Disconnected));
        assert!(matches!(
            b.try_send(&frame(1)),
            Err(LinkError::Disconnected { .. })
        ));
    }

    #[tokio::test]
    async fn a_network_broadcasts_to_every_other_node() {
        let mut nodes = InProcessBus::network(3);
        nodes[0].send(&frame(1)).await.unwrap();
        assert_eq!(nodes[1].recv().await.unwrap(), frame(1));
        assert_eq!(nodes[2].recv().await.unwrap(), frame(1));
        assert_eq!(nodes[0].try_recv(), Err(TryRecvError::Empty));
    }

    #[tokio::test]
    async fn recv_is_cancel_safe() {
        let (mut a, mut b) = InProcessBus::pair();
        // A recv that loses a select! race loses nothing.
        tokio::select! {
            biased;
            _ = b.recv() => panic!("nothing was sent yet"),
            _ = tokio::task::yield_now() => {}
        }
        a.send(&frame(5)).await.unwrap();
        assert_eq!(b.recv().await.unwrap(), frame(5));
    }
}
