//! Per-event options: timeout, retries and the backoff between retries.

use std::time::Duration;

/// Options of one event: how long one attempt may take, and how often a failed attempt is
/// tried again. Set them with attribute options on `#[event]`/`#[listen]`
/// (`#[event(timeout = "30s", retries = 3, backoff = "100ms")]`), or with
/// [`DriveBuilder::options`](crate::DriveBuilder::options).
///
/// - **timeout**: an attempt that runs longer fails with [`Error::Timeout`](crate::Error::Timeout).
///   It counts wall time, including time spent waiting in an [`Inbox`](crate::Inbox).
///   None by default.
/// - **retries**: an attempt that returns an error or times out is run again, with the same
///   input, up to `retries` more times. A panic or a missing context is never retried. When
///   every attempt failed, the run fails with
///   [`Error::RetriesExhausted`](crate::Error::RetriesExhausted), holding the last error and
///   the attempt count. `0` by default.
/// - **backoff**: the wait before the first retry; it doubles before each following one
///   (`100ms`, `200ms`, `400ms`, …). Zero by default: retry at once. The event keeps its
///   concurrency slot while it waits.
///
/// An event without options costs nothing extra: no timer, no retry bookkeeping.
///
/// ```
/// use std::time::Duration;
/// use drive_flow::EventOptions;
///
/// let options = EventOptions::new()
///     .timeout(Duration::from_secs(30))
///     .retries(3)
///     .backoff(Duration::from_millis(100));
/// assert_eq!(options.timeout, Some(Duration::from_secs(30)));
/// assert_eq!(options.retries, 3);
/// assert_eq!(options.delay_before_retry(1), Duration::from_millis(100));
/// assert_eq!(options.delay_before_retry(3), Duration::from_millis(400));
/// assert_eq!(EventOptions::default(), EventOptions::new());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventOptions {
    /// How long one attempt may take; `None`: no limit.
    pub timeout: Option<Duration>,
    /// How many times a failed attempt is tried again.
    pub retries: u32,
    /// The wait before the first retry, doubled before each following one.
    pub backoff: Duration,
}

impl EventOptions {
    /// No timeout, no retries.
    ///
    /// ```
    /// let options = drive_flow::EventOptions::new();
    /// assert_eq!(options.timeout, None);
    /// assert_eq!(options.retries, 0);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Fail an attempt that runs longer than `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = drive_flow::EventOptions::new().timeout(Duration::from_millis(500));
    /// assert_eq!(options.timeout, Some(Duration::from_millis(500)));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Run a failed attempt (an error or a timeout) again, up to `retries` more times.
    ///
    /// ```
    /// let options = drive_flow::EventOptions::new().retries(2);
    /// assert_eq!(options.retries, 2);
    /// ```
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Wait `backoff` before the first retry, twice as long before the second, and so on.
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = drive_flow::EventOptions::new().retries(2).backoff(Duration::from_millis(10));
    /// assert_eq!(options.delay_before_retry(2), Duration::from_millis(20));
    /// ```
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// The wait after failed attempt number `attempt` (counting from 1), before the next:
    /// `backoff * 2^(attempt - 1)`, saturating.
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = drive_flow::EventOptions::new().backoff(Duration::from_secs(1));
    /// assert_eq!(options.delay_before_retry(1), Duration::from_secs(1));
    /// assert_eq!(options.delay_before_retry(2), Duration::from_secs(2));
    /// ```
    pub fn delay_before_retry(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor)
    }

    /// Whether the event runs with neither timeout nor retries (its fast path).
    pub(crate) fn is_plain(&self) -> bool {
        self.timeout.is_none() && self.retries == 0
    }
}
