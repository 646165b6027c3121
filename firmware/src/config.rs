//! Configuration errors and the range checks every function's config uses.
//! Each function's module owns its config struct (serde-deserialisable
//! without `std`) and a `validate()` returning [`ConfigError`], built from
//! [`check_range`] and [`check_order`]; the controller's config aggregates
//! them and the `std`-side loader reads it from TOML.
//!
//! This module uses only `core` and `heapless`; it knows no function's
//! config (each names its own fields).

use core::fmt::{self, Write};
use core::ops::{Bound, RangeBounds};

/// A config value that is out of range or inconsistent: which field, and
/// what is wrong, in words a commissioning engineer can act on. Fixed
/// capacity (no heap); over-long text is truncated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: heapless::String<64>,
    pub message: heapless::String<160>,
}

impl ConfigError {
    /// `ConfigError::new("reserve_soc", format_args!("must be within 0..=1, found {}", x))`
    pub fn new(field: &str, message: fmt::Arguments<'_>) -> Self {
        let mut f = heapless::String::new();
        push_truncated(&mut f, field);
        let mut m = heapless::String::new();
        let _ = m.write_fmt(message);
        ConfigError {
            field: f,
            message: m,
        }
    }

    /// Prefixes the message with its context: the item of a list the field
    /// belongs to (`circuit \`lighting\`: ` + message), so a user knows which
    /// one to fix, or why the bound is what it is.
    pub fn with_context(self, context: fmt::Arguments<'_>) -> Self {
        let mut m: heapless::String<160> = heapless::String::new();
        let _ = m.write_fmt(context);
        push_truncated(&mut m, ": ");
        push_truncated(&mut m, &self.message);
        ConfigError {
            field: self.field,
            message: m,
        }
    }

    /// Prefixes the field with the table it sits in (`protection.` + field).
    pub fn within(self, table: &str) -> Self {
        let mut f: heapless::String<64> = heapless::String::new();
        push_truncated(&mut f, table);
        push_truncated(&mut f, ".");
        push_truncated(&mut f, &self.field);
        ConfigError {
            field: f,
            message: self.message,
        }
    }
}

fn push_truncated<const N: usize>(s: &mut heapless::String<N>, text: &str) {
    for c in text.chars() {
        if s.push(c).is_err() {
            break;
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.field, self.message)
    }
}

/// Numbers above 0: `check_range(field, x, POSITIVE)`.
pub const POSITIVE: (Bound<f32>, Bound<f32>) = (Bound::Excluded(0.0), Bound::Unbounded);

/// Fractions above 0 up to 1, `(0, 1]`: `check_range(field, x, POSITIVE_FRACTION)`.
pub const POSITIVE_FRACTION: (Bound<f32>, Bound<f32>) =
    (Bound::Excluded(0.0), Bound::Included(1.0));

/// A number a config field holds. A float must also be finite to pass a
/// check; an integer always is.
pub trait ConfigNumber: Copy + PartialOrd + fmt::Display {
    /// Whether the value is a finite number.
    fn is_finite_number(self) -> bool {
        true
    }
}

impl ConfigNumber for f32 {
    fn is_finite_number(self) -> bool {
        self.is_finite()
    }
}
impl ConfigNumber for u8 {}
impl ConfigNumber for u16 {}
impl ConfigNumber for u32 {}
impl ConfigNumber for u64 {}
impl ConfigNumber for usize {}

/// Checks that `value` is a finite number within `range` (a Rust range:
/// `0.0..=1.0`, `0.0..1.0`, `1..`, `..=1500`, or a `(Bound, Bound)` pair for
/// an open lower end). The error names `field` and says the range:
/// `check_range("reserve_soc", 1.5, 0.0..=0.99)` fails with
/// "must be within 0..=0.99, found 1.5".
pub fn check_range<T: ConfigNumber>(
    field: &str,
    value: T,
    range: impl RangeBounds<T>,
) -> Result<(), ConfigError> {
    let (low, high) = (range.start_bound(), range.end_bound());
    if is_within(value, low, high) {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format_args!("must be {}, found {value}", RangeWords(low, high)),
        ))
    }
}

/// How a field must compare with another field ([`check_order`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Strictly greater.
    Above,
    /// Greater or equal.
    AtLeast,
    /// Strictly less.
    Below,
    /// Less or equal.
    AtMost,
}

/// Checks that `value` is a finite number that stands in `order` to the
/// value of another field, `other_field` = `other`. The error names both:
/// `check_order("max_target_soc", 0.1, Order::Above, "reserve_soc", 0.2)`
/// fails with "must be above reserve_soc (0.2), found 0.1".
pub fn check_order<T: ConfigNumber>(
    field: &str,
    value: T,
    order: Order,
    other_field: &str,
    other: T,
) -> Result<(), ConfigError> {
    let (low, high, words) = match order {
        Order::Above => (Bound::Excluded(&other), Bound::Unbounded, "above"),
        Order::AtLeast => (Bound::Included(&other), Bound::Unbounded, "at least"),
        Order::Below => (Bound::Unbounded, Bound::Excluded(&other), "below"),
        Order::AtMost => (Bound::Unbounded, Bound::Included(&other), "at most"),
    };
    if is_within(value, low, high) {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format_args!("must be {words} {other_field} ({other}), found {value}"),
        ))
    }
}

fn is_within<T: ConfigNumber>(value: T, low: Bound<&T>, high: Bound<&T>) -> bool {
    let above_low = match low {
        Bound::Included(lo) => value >= *lo,
        Bound::Excluded(lo) => value > *lo,
        Bound::Unbounded => true,
    };
    let below_high = match high {
        Bound::Included(hi) => value <= *hi,
        Bound::Excluded(hi) => value < *hi,
        Bound::Unbounded => true,
    };
    value.is_finite_number() && above_low && below_high
}

/// A range in the words of a config error: `within 0..=1`, `within (0, 1]`,
/// `≥ 0`, `> 0`, `≤ 1500`.
struct RangeWords<'a, T>(Bound<&'a T>, Bound<&'a T>);

impl<T: fmt::Display> fmt::Display for RangeWords<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Bound::{Excluded, Included, Unbounded};
        match (self.0, self.1) {
            (Included(lo), Included(hi)) => write!(f, "within {lo}..={hi}"),
            (Included(lo), Excluded(hi)) => write!(f, "within {lo}..{hi}"),
            (Excluded(lo), Included(hi)) => write!(f, "within ({lo}, {hi}]"),
            (Excluded(lo), Excluded(hi)) => write!(f, "within ({lo}, {hi})"),
            (Included(lo), Unbounded) => write!(f, "≥ {lo}"),
            (Excluded(lo), Unbounded) => write!(f, "> {lo}"),
            (Unbounded, Included(hi)) => write!(f, "≤ {hi}"),
            (Unbounded, Excluded(hi)) => write!(f, "< {hi}"),
            (Unbounded, Unbounded) => write!(f, "a finite number"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_prefixes() {
        let e = ConfigError::new(
            "reserve_soc",
            format_args!("must be within 0..=1, found {}", 1.5),
        )
        .within("scheduling");
        assert_eq!(
            e.to_string_for_test(),
            "`scheduling.reserve_soc`: must be within 0..=1, found 1.5"
        );
    }

    #[test]
    fn a_range_check_says_the_range_in_words() {
        let message = |r: Result<(), ConfigError>| r.unwrap_err().message;
        assert!(check_range("x", 0.5f32, 0.0..=1.0).is_ok());
        assert!(check_range("x", 1.0f32, 0.0..=1.0).is_ok());
        assert_eq!(
            message(check_range("x", 1.5f32, 0.0..=1.0)),
            "must be within 0..=1, found 1.5"
        );
        assert_eq!(
            message(check_range("x", 1.0f32, 0.0..1.0)),
            "must be within 0..1, found 1"
        );
        assert!(check_range("x", 1.0f32, POSITIVE_FRACTION).is_ok());
        assert_eq!(
            message(check_range("x", 0.0f32, POSITIVE_FRACTION)),
            "must be within (0, 1], found 0"
        );
        assert_eq!(
            message(check_range(
                "x",
                1.0f32,
                (Bound::Excluded(0.0f32), Bound::Excluded(1.0))
            )),
            "must be within (0, 1), found 1"
        );
        assert_eq!(
            message(check_range("x", 0.0f32, POSITIVE)),
            "must be > 0, found 0"
        );
        assert_eq!(
            message(check_range("x", -1.0f32, 0.0..)),
            "must be ≥ 0, found -1"
        );
        assert_eq!(
            message(check_range(
                "x",
                0u64,
                (Bound::Excluded(0), Bound::Unbounded)
            )),
            "must be > 0, found 0"
        );
        assert_eq!(
            message(check_range("x", 2000u64, ..=1500)),
            "must be ≤ 1500, found 2000"
        );
        assert_eq!(message(check_range("x", 9u8, ..9)), "must be < 9, found 9");
    }

    #[test]
    fn a_float_must_be_finite_to_pass() {
        assert!(check_range("x", f32::NAN, ..).is_err());
        assert!(check_range("x", f32::INFINITY, 0.0..).is_err());
        assert!(check_range("x", 3.0f32, ..).is_ok());
        assert!(check_order("x", f32::NAN, Order::AtMost, "y", 1.0).is_err());
    }

    #[test]
    fn an_order_check_names_the_other_field() {
        assert!(check_order("max", 2.0f32, Order::Above, "min", 1.0).is_ok());
        assert!(check_order("max", 1.0f32, Order::AtLeast, "min", 1.0).is_ok());
        assert!(check_order("max", 1.0f32, Order::Above, "min", 1.0).is_err());
        assert!(check_order("min", 1.0f32, Order::AtMost, "max", 1.0).is_ok());
        assert!(check_order("min", 1.0f32, Order::Below, "max", 1.0).is_err());
        let e =
            check_order("max_target_soc", 0.1f32, Order::Above, "reserve_soc", 0.2).unwrap_err();
        assert_eq!(e.field, "max_target_soc");
        assert_eq!(e.message, "must be above reserve_soc (0.2), found 0.1");
        let e = check_order("a_ms", 5u32, Order::AtLeast, "b_ms", 10).unwrap_err();
        assert_eq!(e.message, "must be at least b_ms (10), found 5");
        let e = check_order("a", 5u32, Order::Below, "b", 5).unwrap_err();
        assert_eq!(e.message, "must be below b (5), found 5");
        let e = check_order("a", 6u32, Order::AtMost, "b", 5).unwrap_err();
        assert_eq!(e.message, "must be at most b (5), found 6");
    }

    #[test]
    fn an_item_prefixes_the_message() {
        let e = check_range("circuits.expected_load_w", -1.0f32, 0.0..)
            .map_err(|e| e.with_context(format_args!("circuit `{}`", "fridge")))
            .unwrap_err();
        assert_eq!(e.field, "circuits.expected_load_w");
        assert_eq!(e.message, "circuit `fridge`: must be ≥ 0, found -1");
    }

    impl ConfigError {
        fn to_string_for_test(&self) -> heapless::String<256> {
            let mut s = heapless::String::new();
            let _ = write!(s, "{self}");
            s
        }
    }
}
