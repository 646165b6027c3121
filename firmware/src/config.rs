//! Configuration errors shared by every function's config. Each function's
//! module owns its config struct (serde-deserialisable without `std`) and a
//! `validate()` returning [`ConfigError`]; the controller's config aggregates
//! them and the `std`-side loader reads it from TOML.

use core::fmt::{self, Write};

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

    impl ConfigError {
        fn to_string_for_test(&self) -> heapless::String<256> {
            let mut s = heapless::String::new();
            let _ = write!(s, "{self}");
            s
        }
    }
}
