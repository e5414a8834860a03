//! The kill switch: one flag that cuts all egress at once.
//!
//! Engaging it makes new connections fail and wakes every open tunnel so it
//! closes now, not at its next byte.

use tokio::sync::watch;

pub struct KillSwitch {
    tx: watch::Sender<bool>,
}

impl Default for KillSwitch {
    fn default() -> Self {
        Self { tx: watch::channel(false).0 }
    }
}

impl KillSwitch {
    pub fn engaged(&self) -> bool {
        *self.tx.borrow()
    }

    /// Sets the switch; returns whether it changed.
    pub fn set(&self, engaged: bool) -> bool {
        self.tx.send_if_modified(|v| std::mem::replace(v, engaged) != engaged)
    }

    /// Resolves once the switch is engaged (immediately if it already is).
    pub async fn cut(&self) {
        let mut rx = self.tx.subscribe();
        // wait_for only fails when the sender is gone, which outlives every tunnel.
        let _ = rx.wait_for(|engaged| *engaged).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn cut_wakes_waiters() {
        let k = std::sync::Arc::new(KillSwitch::default());
        let waiter = tokio::spawn({
            let k = k.clone();
            async move { k.cut().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        assert!(k.set(true));
        tokio::time::timeout(Duration::from_secs(1), waiter).await.unwrap().unwrap();
        assert!(!k.set(true), "setting the same value is not a change");
    }
}
