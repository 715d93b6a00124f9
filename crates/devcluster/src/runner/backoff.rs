//! Restart decisions and crash back-off, as the kubelet applies them.

use std::time::Duration;

/// A pod's `spec.restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// Parses `spec.restartPolicy`; absent means `Always`, as the API server defaults it.
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("Never") => Self::Never,
            Some("OnFailure") => Self::OnFailure,
            _ => Self::Always,
        }
    }

    /// Whether a container that exited with `exit_code` is started again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => exit_code != 0,
            Self::Never => false,
        }
    }
}

/// The kubelet's crash back-off: the first restart is immediate, later ones wait `base`, doubling up to `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    /// The kubelet's values: 10s doubling to 5 minutes.
    fn default() -> Self {
        Self { base: Duration::from_secs(10), cap: Duration::from_secs(300) }
    }
}

impl Backoff {
    /// How long to wait before restart number `restart_count + 1`.
    pub fn delay(&self, restart_count: u32) -> Duration {
        if restart_count == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(restart_count - 1).unwrap_or(u32::MAX);
        self.base.checked_mul(factor).map_or(self.cap, |d| d.min(self.cap))
    }

    /// A container that ran this long without crashing starts over at the first step (the kubelet
    /// forgets back-off after twice the cap).
    pub fn resets_after(&self, ran_for: Duration) -> bool {
        ran_for >= self.cap.saturating_mul(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_decide_restarts() {
        assert_eq!(RestartPolicy::parse(None), RestartPolicy::Always);
        assert_eq!(RestartPolicy::parse(Some("OnFailure")), RestartPolicy::OnFailure);
        assert!(RestartPolicy::Always.restarts(0));
        assert!(RestartPolicy::OnFailure.restarts(3) && !RestartPolicy::OnFailure.restarts(0));
        assert!(!RestartPolicy::Never.restarts(1));
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_to_five_minutes() {
        let b = Backoff::default();
        let secs: Vec<u64> = (0..8).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, [0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.delay(200), Duration::from_secs(300));
        assert!(b.resets_after(Duration::from_secs(600)) && !b.resets_after(Duration::from_secs(599)));
        let fast = Backoff { base: Duration::from_millis(50), cap: Duration::from_millis(400) };
        assert_eq!(fast.delay(2), Duration::from_millis(100));
    }
}
