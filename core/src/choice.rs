//! Settings with a fixed set of values (`--qos rtcp-rtp`, `fallback = "opaque_id"`).
//!
//! The core names each value once, here; the command line (clap, in the agent) builds its
//! parser from [`Choice::ALL`], and the TOML file reads the serde names. The core itself
//! knows nothing of clap.

/// A setting with a fixed set of values.
pub trait Choice: Sized + Copy + PartialEq + Send + Sync + 'static {
    /// Every value with its spelling on the command line, in the order `--help` lists them.
    const ALL: &'static [(&'static str, Self)];

    /// The command-line spelling of this value.
    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("?", |(n, _)| n)
    }

    /// The value spelled `name` on the command line.
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// `Display` as the command-line spelling, for `--help`'s defaults.
macro_rules! display_choice {
    ($t:ty) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::choice::Choice::name(*self))
            }
        }
    };
}
pub(crate) use display_choice;

#[cfg(test)]
mod tests {
    use super::Choice;
    use crate::correlate::Fallback;
    use crate::map::qos::QosReports;
    use crate::map::LogFormat;

    /// Every value spelled once, and read back from its spelling (the spellings clap's
    /// `ValueEnum` gave them before, so no command line breaks).
    fn round_trip<T: Choice + std::fmt::Debug>(names: &[&str]) {
        let all: Vec<&str> = T::ALL.iter().map(|(n, _)| *n).collect();
        assert_eq!(all, names);
        for (n, v) in T::ALL {
            assert_eq!(T::from_name(n), Some(*v));
            assert_eq!(v.name(), *n);
        }
        assert_eq!(T::from_name("nonsense"), None);
    }

    #[test]
    fn spellings_are_the_ones_users_typed() {
        round_trip::<Fallback>(&["session", "handle", "opaque-id"]);
        round_trip::<QosReports>(&["off", "rtcp", "rtcp-rtp"]);
        round_trip::<LogFormat>(&["words", "json"]);
        assert_eq!(QosReports::RtcpRtp.to_string(), "rtcp-rtp");
    }
}
