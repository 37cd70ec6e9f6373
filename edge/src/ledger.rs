//! The counters behind rate limits and budgets, as one state machine per subject (a client key
//! or a model): `LedgerState::apply(now, op)`.
//!
//! Rate limits are GCRA token buckets (capacity = the per-minute limit, refilled continuously,
//! like OpenAI's): one theoretical-arrival time per limit, in nanoseconds. Budgets are spend
//! counters per UTC day and calendar month in nano-dollars.
//!
//! A request `Reserve`s its estimate (1 request, estimated tokens, worst-case cost) before the
//! provider is called: every limit is checked, and only if all pass are all charged, so
//! concurrent requests can never overshoot. Afterwards `Adjust` settles the difference with the
//! provider's reported usage (negative when the estimate was high), or gives the whole estimate
//! back when no provider was reached. A reservation never settled stays charged: the error is
//! always on the side of the limit.
//!
//! The state is plain serde data, so the same code runs inside a Durable Object (Workers), over
//! a compare-and-swap on the key-value store (Spin), or in memory (tests).

use serde::{Deserialize, Serialize};

const MINUTE_NS: u128 = 60_000_000_000;
const DAY_MS: u64 = 86_400_000;

/// The limits that apply to one subject; they travel with each op, so the counter store never
/// needs the config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    /// Nano-dollars.
    pub budget_day: Option<u64>,
    pub budget_month: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Checks every limit, then charges them all at once: `requests` (1, or 0 when the request
    /// was already admitted against the rate limit), tokens and nano-dollars.
    Reserve {
        limits: Limits,
        #[serde(default = "one")]
        requests: u64,
        tokens: u64,
        cost: u64,
    },
    /// Settles a reservation made at `reserved_ms`: adds these (possibly negative) deltas.
    Adjust { limits: Limits, requests: i64, tokens: i64, cost: i64, reserved_ms: u64 },
}

fn one() -> u64 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Denial {
    Requests,
    Tokens,
    /// More tokens than the per-minute limit allows at all.
    TooLarge,
    BudgetDay,
    BudgetMonth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Reply {
    Granted {
        /// Left after this request, when limited: for `x-ratelimit-remaining-*`.
        remaining_requests: Option<u64>,
        remaining_tokens: Option<u64>,
        /// Until the bucket is full again.
        reset_requests_ms: Option<u64>,
        reset_tokens_ms: Option<u64>,
    },
    Denied { reason: Denial, retry_after_ms: Option<u64> },
    Adjusted,
}

/// GCRA: the time at which the bucket will be full again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    tat_ns: u128,
}

impl Bucket {
    fn cost_ns(limit: u64, n: u64) -> u128 {
        // Rounded up, so rounding never admits more than the limit.
        (u128::from(n) * MINUTE_NS).div_ceil(u128::from(limit.max(1)))
    }

    /// `(new tat, ok)` for taking `n`.
    fn take(&self, now_ns: u128, limit: u64, n: u64) -> (u128, bool) {
        let tat = self.tat_ns.max(now_ns) + Self::cost_ns(limit, n);
        (tat, tat - now_ns <= MINUTE_NS)
    }

    fn remaining(&self, now_ns: u128, limit: u64) -> u64 {
        let used = self.tat_ns.saturating_sub(now_ns);
        let free = MINUTE_NS.saturating_sub(used);
        (free * u128::from(limit) / MINUTE_NS) as u64
    }

    fn reset_ms(&self, now_ns: u128) -> u64 {
        (self.tat_ns.saturating_sub(now_ns) / 1_000_000) as u64
    }

    fn adjust(&mut self, limit: u64, delta: i64) {
        let d = Self::cost_ns(limit, delta.unsigned_abs());
        self.tat_ns = if delta >= 0 { self.tat_ns + d } else { self.tat_ns.saturating_sub(d) };
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerState {
    #[serde(default)]
    pub requests: Bucket,
    #[serde(default)]
    pub tokens: Bucket,
    /// Days since the epoch (UTC) and nano-dollars spent that day.
    #[serde(default)]
    pub day: u64,
    #[serde(default)]
    pub day_spent: u64,
    /// Months since year 0 and nano-dollars spent that month.
    #[serde(default)]
    pub month: u64,
    #[serde(default)]
    pub month_spent: u64,
}

impl LedgerState {
    pub fn apply(&mut self, now_ms: u64, op: &Op) -> Reply {
        let now_ns = u128::from(now_ms) * 1_000_000;
        let (day, month) = (now_ms / DAY_MS, month_index(now_ms));
        if self.day != day {
            self.day = day;
            self.day_spent = 0;
        }
        if self.month != month {
            self.month = month;
            self.month_spent = 0;
        }
        match *op {
            Op::Reserve { limits, requests, tokens, cost } => self.reserve(now_ms, now_ns, &limits, requests, tokens, cost),
            Op::Adjust { limits, requests, tokens, cost, reserved_ms } => {
                if let Some(l) = limits.rpm {
                    self.requests.adjust(l, requests);
                }
                if let Some(l) = limits.tpm {
                    self.tokens.adjust(l, tokens);
                }
                // A refund only applies to the period it was charged in.
                let same_day = reserved_ms / DAY_MS == day;
                let same_month = month_index(reserved_ms) == month;
                if cost >= 0 || same_day {
                    self.day_spent = add_signed(self.day_spent, cost);
                }
                if cost >= 0 || same_month {
                    self.month_spent = add_signed(self.month_spent, cost);
                }
                Reply::Adjusted
            }
        }
    }

    fn reserve(&mut self, now_ms: u64, now_ns: u128, l: &Limits, requests: u64, tokens: u64, cost: u64) -> Reply {
        let deny = |reason, retry_after_ms| Reply::Denied { reason, retry_after_ms };
        let mut req_tat = None;
        if let Some(limit) = l.rpm.filter(|_| requests > 0) {
            let (tat, ok) = self.requests.take(now_ns, limit, requests);
            if !ok {
                return deny(Denial::Requests, Some(wait_ms(tat, now_ns)));
            }
            req_tat = Some(tat);
        }
        let mut tok_tat = None;
        if let Some(limit) = l.tpm {
            if tokens > limit {
                return deny(Denial::TooLarge, None);
            }
            let (tat, ok) = self.tokens.take(now_ns, limit, tokens);
            if !ok {
                return deny(Denial::Tokens, Some(wait_ms(tat, now_ns)));
            }
            tok_tat = Some(tat);
        }
        if l.budget_day.is_some_and(|b| self.day_spent.saturating_add(cost) > b) {
            return deny(Denial::BudgetDay, Some(DAY_MS - now_ms % DAY_MS));
        }
        if l.budget_month.is_some_and(|b| self.month_spent.saturating_add(cost) > b) {
            return deny(Denial::BudgetMonth, None);
        }
        // Every check passed: charge everything at once.
        if let Some(t) = req_tat {
            self.requests.tat_ns = t;
        }
        if let Some(t) = tok_tat {
            self.tokens.tat_ns = t;
        }
        self.day_spent = self.day_spent.saturating_add(cost);
        self.month_spent = self.month_spent.saturating_add(cost);
        Reply::Granted {
            remaining_requests: l.rpm.map(|lim| self.requests.remaining(now_ns, lim)),
            remaining_tokens: l.tpm.map(|lim| self.tokens.remaining(now_ns, lim)),
            reset_requests_ms: l.rpm.map(|_| self.requests.reset_ms(now_ns)),
            reset_tokens_ms: l.tpm.map(|_| self.tokens.reset_ms(now_ns)),
        }
    }
}

fn wait_ms(tat: u128, now_ns: u128) -> u64 {
    // The bucket holds a minute; this much must drain before the request fits.
    ((tat - now_ns - MINUTE_NS).div_ceil(1_000_000)) as u64
}

fn add_signed(v: u64, d: i64) -> u64 {
    if d >= 0 { v.saturating_add(d as u64) } else { v.saturating_sub(d.unsigned_abs()) }
}

/// Months since year 0 of the UTC date of `ms` (civil-from-days, H. Hinnant).
pub fn month_index(ms: u64) -> u64 {
    let z = (ms / DAY_MS) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y * 12 + m - 1) as u64
}

impl LedgerState {
    /// Counters as stored (JSON) by a platform's ledger: none stored is a fresh state, but a
    /// value that does not parse is an error, never a silent reset (that would hand a spent
    /// budget back): the caller denies the request and logs.
    pub fn load(stored: Option<&str>) -> Result<Self, String> {
        match stored {
            None => Ok(Self::default()),
            Some(s) => serde_json::from_str(s).map_err(|e| format!("stored counters are corrupt ({e}); delete them to reset")),
        }
    }
}

/// One update of stored counters: load (none stored is a fresh state, corrupt is an error),
/// apply `op`, and the JSON to store back. What a Durable Object does per event and what each
/// compare-and-swap attempt does.
pub fn apply_stored(stored: Option<&[u8]>, now_ms: u64, op: &Op) -> Result<(Reply, Vec<u8>), String> {
    let text = stored.map(|b| std::str::from_utf8(b).map_err(|_| "stored counters are not UTF-8".to_owned())).transpose()?;
    LedgerState::load(text)?.step(now_ms, op)
}

impl LedgerState {
    /// Applies `op` and returns the reply with the JSON to store: the step a Durable Object
    /// takes on the state it keeps in memory.
    pub fn step(&mut self, now_ms: u64, op: &Op) -> Result<(Reply, Vec<u8>), String> {
        let reply = self.apply(now_ms, op);
        let json = serde_json::to_vec(self).map_err(|e| e.to_string())?;
        Ok((reply, json))
    }
}

/// A compare-and-swap store's answer to a swap: done, or the value changed since it was read
/// (with a handle on the new value).
pub enum Swap<H> {
    Done,
    Conflict(H),
}

/// Compare-and-swap attempts before an update gives up (each conflict means another request
/// updated the same counters in between).
pub const CAS_ATTEMPTS: usize = 64;

/// Applies `op` to counters in a key-value store with compare-and-swap (Spin's
/// `wasi:keyvalue/atomics`): read, apply, swap; on a conflict, again from the new value, at most
/// [`CAS_ATTEMPTS`] times. Exact across concurrent requests as far as the store's CAS is.
pub fn apply_with_cas<H>(
    key: &str,
    now_ms: u64,
    op: &Op,
    mut handle: H,
    current: impl Fn(&H) -> Result<Option<Vec<u8>>, String>,
    swap: impl Fn(H, Vec<u8>) -> Result<Swap<H>, String>,
) -> Result<Reply, String> {
    for _ in 0..CAS_ATTEMPTS {
        let stored = current(&handle).map_err(|e| format!("{key}: {e}"))?;
        let (reply, json) = apply_stored(stored.as_deref(), now_ms, op).map_err(|e| format!("{key}: {e}"))?;
        match swap(handle, json).map_err(|e| format!("{key}: {e}"))? {
            Swap::Done => return Ok(reply),
            Swap::Conflict(again) => handle = again,
        }
    }
    Err(format!("{key}: {CAS_ATTEMPTS} compare-and-swap conflicts in a row"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn corrupt_stored_counters_are_an_error_not_a_reset() {
        assert_eq!(LedgerState::load(None), Ok(LedgerState::default()));
        let mut st = LedgerState::default();
        st.apply(0, &Op::Adjust { limits: Limits::default(), requests: 1, tokens: 10, cost: 5, reserved_ms: 0 });
        let json = serde_json::to_string(&st).expect("json");
        assert_eq!(LedgerState::load(Some(&json)), Ok(st));
        let e = LedgerState::load(Some("{\"requests\": 17")).expect_err("truncated");
        assert!(e.contains("corrupt"), "{e}");
        assert!(LedgerState::load(Some("null")).is_err());
    }

    use super::*;

    const T0: u64 = 1_764_028_800_000; // 2025-11-25T00:00:00Z

    fn reserve(limits: Limits, tokens: u64, cost: u64) -> Op {
        Op::Reserve { limits, requests: 1, tokens, cost }
    }

    #[test]
    fn rpm_allows_exactly_the_limit_then_refills() {
        let l = Limits { rpm: Some(3), ..Limits::default() };
        let mut s = LedgerState::default();
        for left in [2, 1, 0] {
            assert!(matches!(s.apply(T0, &reserve(l, 0, 0)), Reply::Granted { remaining_requests: Some(r), .. } if r == left));
        }
        let Reply::Denied { reason: Denial::Requests, retry_after_ms: Some(wait) } = s.apply(T0, &reserve(l, 0, 0)) else {
            panic!("fourth request must be denied")
        };
        assert_eq!(wait, 20_000);
        assert!(matches!(s.apply(T0 + 19_999, &reserve(l, 0, 0)), Reply::Denied { .. }));
        assert!(matches!(s.apply(T0 + 20_000, &reserve(l, 0, 0)), Reply::Granted { .. }));
    }

    #[test]
    fn a_denied_reserve_charges_nothing() {
        let l = Limits { rpm: Some(10), tpm: Some(100), ..Limits::default() };
        let mut s = LedgerState::default();
        assert!(matches!(s.apply(T0, &reserve(l, 90, 0)), Reply::Granted { .. }));
        let before = s.clone();
        assert!(matches!(s.apply(T0, &reserve(l, 20, 0)), Reply::Denied { reason: Denial::Tokens, .. }));
        assert_eq!(s, before);
        assert!(matches!(s.apply(T0, &reserve(l, 101, 0)), Reply::Denied { reason: Denial::TooLarge, retry_after_ms: None }));
    }

    #[test]
    fn settling_below_the_estimate_gives_tokens_and_budget_back() {
        let l = Limits { tpm: Some(100), budget_day: Some(1_000), ..Limits::default() };
        let mut s = LedgerState::default();
        assert!(matches!(s.apply(T0, &reserve(l, 100, 1_000)), Reply::Granted { .. }));
        assert!(matches!(s.apply(T0, &reserve(l, 1, 1)), Reply::Denied { .. }));
        s.apply(T0, &Op::Adjust { limits: l, requests: 0, tokens: -60, cost: -600, reserved_ms: T0 });
        assert_eq!(s.day_spent, 400);
        assert!(matches!(s.apply(T0, &reserve(l, 60, 600)), Reply::Granted { .. }));
        assert!(matches!(s.apply(T0, &reserve(l, 0, 1)), Reply::Denied { reason: Denial::BudgetDay, .. }));
    }

    #[test]
    fn budgets_reset_at_utc_midnight_and_month_start() {
        let l = Limits { budget_day: Some(10), budget_month: Some(15), ..Limits::default() };
        let mut s = LedgerState::default();
        assert!(matches!(s.apply(T0, &reserve(l, 0, 10)), Reply::Granted { .. }));
        let Reply::Denied { reason: Denial::BudgetDay, retry_after_ms: Some(w) } = s.apply(T0 + 1_000, &reserve(l, 0, 1)) else { panic!() };
        assert_eq!(w, DAY_MS - 1_000);
        assert!(matches!(s.apply(T0 + DAY_MS, &reserve(l, 0, 5)), Reply::Granted { .. }));
        assert!(matches!(s.apply(T0 + DAY_MS, &reserve(l, 0, 1)), Reply::Denied { reason: Denial::BudgetMonth, .. }));
        // 2025-12-01 is six days after T0.
        assert!(matches!(s.apply(T0 + 6 * DAY_MS, &reserve(l, 0, 10)), Reply::Granted { .. }));
    }

    #[test]
    fn month_index_matches_the_calendar() {
        assert_eq!(month_index(0), 1970 * 12);
        assert_eq!(month_index(T0), 2025 * 12 + 10);
        assert_eq!(month_index(T0 + 6 * DAY_MS), 2025 * 12 + 11);
        assert_eq!(month_index(951_782_400_000), 2000 * 12 + 1); // 2000-02-29
    }

    #[test]
    fn state_round_trips_as_json() {
        let mut s = LedgerState::default();
        s.apply(T0, &reserve(Limits { rpm: Some(5), budget_day: Some(9), ..Limits::default() }, 0, 3));
        let back: LedgerState = serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("parse");
        assert_eq!(back, s);
    }

    /// A store whose first `conflicts` swaps find the value changed by another writer (which
    /// adds one request each time).
    fn cas_store(conflicts: usize) -> (std::cell::RefCell<Option<Vec<u8>>>, std::cell::Cell<usize>) {
        (std::cell::RefCell::new(None), std::cell::Cell::new(conflicts))
    }

    #[test]
    fn the_cas_loop_retries_from_the_new_value_after_a_conflict() {
        let (stored, left) = cas_store(3);
        let other = Op::Adjust { limits: Limits::default(), requests: 1, tokens: 0, cost: 0, reserved_ms: 0 };
        let current = |_: &()| Ok(stored.borrow().clone());
        let swap = |_: (), new: Vec<u8>| {
            if left.get() > 0 {
                left.set(left.get() - 1);
                let (_, theirs) = apply_stored(stored.borrow().as_deref(), T0, &other)?;
                *stored.borrow_mut() = Some(theirs);
                return Ok(Swap::Conflict(()));
            }
            *stored.borrow_mut() = Some(new);
            Ok(Swap::Done)
        };
        let limits = Limits { rpm: Some(10), ..Limits::default() };
        let reply = apply_with_cas("ledger:key:a", T0, &reserve(limits, 0, 0), (), current, swap).expect("applied");
        assert!(matches!(reply, Reply::Granted { .. }), "{reply:?}");
        // The three other writers' requests and ours: none lost.
        let state = LedgerState::load(std::str::from_utf8(stored.borrow().as_deref().unwrap_or_default()).ok()).expect("state");
        let mut expected = LedgerState::default();
        for _ in 0..3 {
            expected.apply(T0, &other);
        }
        expected.apply(T0, &reserve(limits, 0, 0));
        assert_eq!(state, expected);
    }

    #[test]
    fn the_cas_loop_gives_up_after_its_attempts_and_never_resets_corrupt_counters() {
        let (stored, left) = cas_store(usize::MAX);
        let current = |_: &()| Ok(stored.borrow().clone());
        let swap = |_: (), _: Vec<u8>| {
            left.set(left.get() - 1);
            Ok(Swap::Conflict(()))
        };
        let e = apply_with_cas("ledger:key:a", T0, &reserve(Limits::default(), 0, 0), (), current, swap).expect_err("gave up");
        assert!(e.contains("64 compare-and-swap conflicts"), "{e}");
        assert_eq!(usize::MAX - left.get(), CAS_ATTEMPTS);

        let corrupt = std::cell::RefCell::new(Some(b"{\"requests\": 1".to_vec()));
        let current = |_: &()| Ok(corrupt.borrow().clone());
        let swap = |_: (), new: Vec<u8>| {
            *corrupt.borrow_mut() = Some(new);
            Ok(Swap::Done)
        };
        let e = apply_with_cas("ledger:key:a", T0, &reserve(Limits::default(), 0, 0), (), current, swap).expect_err("corrupt");
        assert!(e.contains("corrupt"), "{e}");
        assert_eq!(corrupt.borrow().as_deref(), Some(&b"{\"requests\": 1"[..]), "left as found");
    }
}
