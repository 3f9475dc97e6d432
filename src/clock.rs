//! The one source of "now". Production uses [`Clock::system`]; tests and simulations use a fixed or
//! offset clock so that "today", "overdue" and audit timestamps are reproducible.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};

#[derive(Clone)]
pub struct Clock(Arc<Inner>);

enum Inner {
    System,
    /// A settable instant, advanced by hand in tests.
    Fixed(Mutex<DateTime<Utc>>),
    /// Real time shifted by a constant, for simulations that replay a different day.
    Offset(Duration),
}

impl Clock {
    pub fn system() -> Self {
        Self(Arc::new(Inner::System))
    }

    pub fn fixed(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Inner::Fixed(Mutex::new(at))))
    }

    pub fn offset(by: Duration) -> Self {
        Self(Arc::new(Inner::Offset(by)))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &*self.0 {
            Inner::System => Utc::now(),
            Inner::Fixed(at) => *at.lock().unwrap_or_else(PoisonError::into_inner),
            Inner::Offset(by) => Utc::now() + *by,
        }
    }

    /// Moves a fixed clock; a no-op on the other kinds (they follow real time).
    pub fn advance(&self, by: Duration) {
        if let Inner::Fixed(at) = &*self.0 {
            let mut at = at.lock().unwrap_or_else(PoisonError::into_inner);
            *at += by;
        }
    }

    /// Sets a fixed clock; a no-op on the other kinds.
    pub fn set(&self, to: DateTime<Utc>) {
        if let Inner::Fixed(at) = &*self.0 {
            *at.lock().unwrap_or_else(PoisonError::into_inner) = to;
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            Inner::System => f.write_str("Clock::System"),
            Inner::Fixed(_) => write!(f, "Clock::Fixed({})", self.now()),
            Inner::Offset(by) => write!(f, "Clock::Offset({by})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 24, 1, 0, 0).unwrap();
        let clock = Clock::fixed(t0);
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::hours(2));
        assert_eq!(clock.now(), t0 + Duration::hours(2));
        let shared = clock.clone();
        shared.set(t0);
        assert_eq!(clock.now(), t0);
    }

    #[test]
    fn offset_clock_follows_real_time_shifted() {
        let clock = Clock::offset(Duration::days(-1));
        let shifted = clock.now();
        let diff = Utc::now() - shifted;
        assert!(diff >= Duration::days(1) && diff < Duration::days(1) + Duration::seconds(5));
    }
}
