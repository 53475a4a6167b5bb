//! How an engine behaves, set by whoever opens it (only binaries read files and flags).

use std::time::Duration;

/// Settings of one engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How often a running engine looks for new inboxes and retries links to relays.
    pub refresh: Duration,
    /// How often it does the slower upkeep: tasks, retention, dead invitations.
    pub upkeep: Duration,
    /// How long an introduction's invitation stays valid.
    pub introduction_ttl_secs: u64,
    /// How long after its expiry an unanswered invitation (and its relay queue) is kept, for
    /// an answer already on its way.
    pub invitation_grace_secs: u64,
    /// Commands that fan out to a channel first take in what waits (when no driver does),
    /// so that a member removed meanwhile gets nothing. Off only where a test must force the
    /// order in which messages cross.
    pub catch_up_before_acting: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(2),
            upkeep: Duration::from_secs(60),
            introduction_ttl_secs: 7 * 24 * 3600,
            invitation_grace_secs: 24 * 3600,
            catch_up_before_acting: true,
        }
    }
}

/// Updates a subscriber may fall behind by before it misses some (it is told how many; the
/// timeline has them all).
pub const EVENT_BUFFER: usize = 1 << 16;
