//! The engine's clock: the only place the conversation service reads time. The core takes
//! time as an argument, so the clock may run faster than the wall (demos and tests scale it
//! so that a 120 s offer timeout passes in seconds) and never runs behind the log.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use omni_core::Timestamp;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Timestamp,
    started: Instant,
    scale: u32,
}

impl Clock {
    /// A clock at wall time, or just after `not_before` (the log's last event) if the wall is
    /// behind it, running `scale` times as fast as the wall.
    pub fn new(scale: u32, not_before: Option<Timestamp>) -> Clock {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let origin = Timestamp(not_before.map_or(wall, |t| wall.max(t.0 + 1)));
        Clock {
            origin,
            started: Instant::now(),
            scale: scale.max(1),
        }
    }

    pub fn now(&self) -> Timestamp {
        let elapsed = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX / 2);
        Timestamp(self.origin.0 + elapsed * i64::from(self.scale))
    }

    /// When, on this machine, the clock shows `at`.
    pub fn instant_of(&self, at: Timestamp) -> Instant {
        let engine_ms = u64::try_from(at.0 - self.origin.0).unwrap_or(0);
        self.started + Duration::from_millis(engine_ms.div_ceil(u64::from(self.scale)))
    }
}
