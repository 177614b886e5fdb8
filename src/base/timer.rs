//! Sleeps that end on time, to the microsecond.
//!
//! tokio's timer wheel has a 1 ms resolution: it rounds every deadline up to the end of its
//! millisecond, so a 0.4 ms sleep lasts about 1 ms, a 5 ms one 5-6 ms, and a chain of sleeps
//! drifts by up to a millisecond each. A toxic has to hold a chunk for exactly what it says
//! (`latency` 5 ms, `bandwidth` 20 MB/s over thousands of chunks), so a [`Timer`] sleeps on a
//! Linux `timerfd` instead: a kernel high-resolution timer (not subject to timer slack),
//! registered once with the runtime's reactor and re-armed for each sleep — no allocation, no
//! lock and no busy wait per sleep, two system calls (arm, read). Elsewhere, or when the
//! descriptor cannot be made (descriptor limit), it falls back to tokio's timer.
//!
//! A deadline that has already passed never sleeps and never yields.
//!
//! Waking up takes time too (20-100 µs on a virtual machine, more after a long idle spell):
//! each timer learns how late its wake-ups are and arms that much early, and a deadline
//! nearer than half of that is taken as reached (writing now is closer to it than any
//! wake-up would be). So there is no busy waiting, and at high rates (`bandwidth` at 1 GB/s:
//! a chunk every few microseconds) pieces go out on their schedule with no timer at all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The largest lead a timer takes (a rare late wake-up must not make later ones early).
const MAX_LEAD: Duration = Duration::from_micros(200);

/// The last lead learned by any timer: where a new timer starts (nanoseconds).
static LEAD_NS: AtomicU64 = AtomicU64::new(0);

/// A reusable precise timer: one per connection-direction that needs one, made on first use.
pub struct Timer {
    #[cfg(target_os = "linux")]
    fd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
    /// The timerfd could not be made: tokio's timer (1 ms resolution) from then on.
    fallback: bool,
    /// How much earlier than a deadline to arm: the running mean of how late wake-ups were.
    lead: Duration,
}

impl Default for Timer {
    fn default() -> Self {
        Timer {
            #[cfg(target_os = "linux")]
            fd: None,
            fallback: false,
            lead: Duration::from_nanos(LEAD_NS.load(Ordering::Relaxed)),
        }
    }
}

impl Timer {
    /// Waits until `deadline` (within about half a wake-up's lateness); returns at once,
    /// without yielding, when it has passed or is nearer than that.
    pub async fn sleep_until(&mut self, deadline: Instant) {
        // Only the first wake-up of a sleep teaches the lead: a second arming (the first woke
        // early) is for a few microseconds on a thread that is awake, whose lateness says
        // nothing about the wake-up from a long sleep the lead is there for.
        let mut first = true;
        loop {
            let now = Instant::now();
            if deadline <= now + self.lead / 2 {
                return;
            }
            #[cfg(target_os = "linux")]
            if !self.fallback {
                let fire = (deadline - now).saturating_sub(self.lead);
                match self.wait(fire).await {
                    Ok(()) => {
                        if first {
                            self.learn(Instant::now().saturating_duration_since(now + fire));
                        }
                        first = false;
                        continue; // fired: the clock decides
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "timerfd unavailable; tokio's timer instead");
                        self.fd = None;
                        self.fallback = true;
                    }
                }
            }
            tokio::time::sleep_until(deadline.into()).await;
            return;
        }
    }

    /// Takes one wake-up's lateness into the lead (a running mean over about 8 wake-ups).
    fn learn(&mut self, late: Duration) {
        let late = late.min(MAX_LEAD);
        let lead = if late > self.lead {
            self.lead + (late - self.lead) / 8
        } else {
            self.lead - (self.lead - late) / 8
        };
        self.lead = lead;
        LEAD_NS.store(lead.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Arms the timerfd for `after` and waits until it has fired.
    #[cfg(target_os = "linux")]
    async fn wait(&mut self, after: Duration) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        if self.fd.is_none() {
            self.fd = Some(linux::timerfd()?);
        }
        let afd = self.fd.as_ref().expect("made above");
        linux::arm(afd.as_raw_fd(), after)?;
        loop {
            let mut guard = afd.readable().await?;
            // The reactor's readiness is cleared by hand either way: a successful read leaves
            // it set (the next sleep would return at once, early, and teach the lead a wake-up
            // that was never late), and a read that would block means the readiness was left
            // over from an earlier sleep (arming reset the expiration count).
            let fired = linux::read_expirations(afd.as_raw_fd());
            guard.clear_ready();
            match fired {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// One precise sleep of `d` (a timer made for it and dropped after): for sleeps that are not
/// per chunk (the `delay` behavior).
pub async fn sleep(d: Duration) {
    if d.is_zero() {
        return;
    }
    let deadline = Instant::now() + d;
    Timer::default().sleep_until(deadline).await
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};
    use std::time::Duration;

    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    pub fn timerfd() -> io::Result<AsyncFd<OwnedFd>> {
        // SAFETY: plain system call; the descriptor it returns is owned below.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an `OwnedFd` keeps its descriptor open, and always the same one, until it
        // is dropped with the `AsyncFd`.
        unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }.map_err(Into::into)
    }

    /// One-shot expiry `after` from now (relative: CLOCK_MONOTONIC is `Instant`'s clock).
    pub fn arm(fd: RawFd, after: Duration) -> io::Result<()> {
        // A zero value would disarm the timer: at least one nanosecond.
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs().min(i32::MAX as u64) as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `spec` lives through the call; a null old value is allowed.
        let r = unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads the expiration count (WouldBlock when the timer has not fired).
    pub fn read_expirations(fd: RawFd) -> io::Result<u64> {
        let mut n = 0u64;
        // SAFETY: reads 8 bytes into a u64 we own.
        let r = unsafe { libc::read(fd, (&mut n as *mut u64).cast(), 8) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sleep may end up to half the largest lead early, never more.
    const SLACK: Duration = Duration::from_micros(100);

    #[tokio::test]
    async fn a_passed_deadline_does_not_sleep_and_a_timer_is_reusable() {
        let mut t = Timer::default();
        let past = Instant::now();
        t.sleep_until(past).await;
        for us in [300u64, 1500, 50, 2000, 5000, 700] {
            let start = Instant::now();
            t.sleep_until(start + Duration::from_micros(us)).await;
            assert!(start.elapsed() + SLACK >= Duration::from_micros(us));
            assert!(t.lead <= MAX_LEAD);
        }
        // A sleep cancelled half-way leaves the timer usable.
        let start = Instant::now();
        let _ = tokio::time::timeout(
            Duration::from_millis(1),
            t.sleep_until(start + Duration::from_millis(50)),
        )
        .await;
        let start = Instant::now();
        t.sleep_until(start + Duration::from_millis(3)).await;
        assert!(start.elapsed() + SLACK >= Duration::from_millis(3));
        let start = Instant::now();
        sleep(Duration::from_micros(700)).await;
        assert!(start.elapsed() + SLACK >= Duration::from_micros(700));
    }

    /// Each wait lasts until its own expiry: the readiness the previous one left behind (its
    /// read succeeded) does not end the next one at once, which also taught the lead a
    /// wake-up that was never late.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_wait_is_not_ended_by_the_previous_ones_readiness() {
        async fn waits_2ms(t: &mut Timer) {
            let start = Instant::now();
            t.wait(Duration::from_millis(2)).await.unwrap();
            let took = start.elapsed();
            assert!(took >= Duration::from_millis(2), "{took:?}");
        }
        let mut t = Timer::default();
        for _ in 0..5 {
            waits_2ms(&mut t).await;
        }
        // A wait cancelled before its expiry, then one armed anew: the new one counts.
        let _ =
            tokio::time::timeout(Duration::from_millis(1), t.wait(Duration::from_millis(3))).await;
        tokio::time::sleep(Duration::from_millis(4)).await; // the cancelled one fires unread
        waits_2ms(&mut t).await;
    }

    #[test]
    fn the_lead_follows_the_lateness_and_stays_bounded() {
        let mut t = Timer {
            lead: Duration::ZERO,
            ..Default::default()
        };
        for _ in 0..100 {
            t.learn(Duration::from_micros(40));
        }
        assert!(t.lead > Duration::from_micros(35) && t.lead <= Duration::from_micros(40));
        // One very late wake-up (a busy machine) moves it by an eighth of MAX_LEAD at most.
        t.learn(Duration::from_millis(5));
        assert!(t.lead <= Duration::from_micros(40) + MAX_LEAD / 8);
        for _ in 0..100 {
            t.learn(Duration::from_micros(10));
        }
        assert!(t.lead < Duration::from_micros(15));
    }
}
