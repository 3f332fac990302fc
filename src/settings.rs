//! Settings declared once. A table of the configuration file is a `section!`: each of
//! its keys is one field with its doc comment, its flag and its default, and the macro
//! makes of that list the serde struct (unknown keys refused, missing keys at their
//! default), its `Default`, the flags (each with its environment variable: `HEPLINK_` and
//! the flag in upper snake case, and its doc comment as `--help`) and the merge of what
//! the command line and the environment gave onto what the file said ([`Section::apply`]).
//! Values are typed once: the file's and the flag's go through the same type ([`Value`]).
//!
//! Adding a setting is adding one field to its section:
//!
//! ```ignore
//! /// Largest request body accepted, bytes (413 beyond).
//! #[flag("http-max-body-bytes")]
//! pub max_body_bytes: usize = 4 << 20,
//! ```
//!
//! is the key `max_body_bytes` of its table (`[http]`), the flag `--http-max-body-bytes`
//! and the variable `HEPLINK_HTTP_MAX_BODY_BYTES`. After the flag's name come clap's
//! builder calls as `name = value` (`value_name = "ADDR"`, `hide_env_values = true`); a
//! `#[via(Type, function)]` line gives a flag that takes another type and sets the
//! section with a function (`--http off` sets `enabled` and `listen`). A nested table is
//! a `#[table]` field after the keys.
//!
//! This module names nothing else of the crate: any module may declare its settings.

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

/// One key: where it is in the file and its flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The TOML path, e.g. `http.max_body_bytes` (`output.mtu` for every `[[output]]`).
    pub path: String,
    /// The flag without its dashes, e.g. `http-max-body-bytes`.
    pub flag: &'static str,
}

impl Key {
    /// Its environment variable.
    pub fn env(&self) -> String {
        env_var(self.flag)
    }
}

/// The environment variable of a flag: `HEPLINK_` and the flag in upper snake case.
pub fn env_var(flag: &str) -> String {
    format!("HEPLINK_{}", flag.to_ascii_uppercase().replace('-', "_"))
}

/// A table of settings (made by `section!`).
pub trait Section: Default {
    /// Appends the table's keys, and those of its tables, under `prefix` (`"http."`).
    fn keys(prefix: &str, out: &mut Vec<Key>);
    /// Adds the keys' flags to `cmd` (`prefix` names the keys and the heading in
    /// `--help`; [`args_of`] restores the heading after).
    fn args(cmd: Command, prefix: &str) -> Command;
    /// Sets every key a flag or an environment variable gave.
    fn apply(&mut self, m: &ArgMatches);
}

/// A value a flag takes: how clap parses it, and how it is read back.
pub trait Value: Clone + Send + Sync + 'static {
    /// The flag with this value's parser and arity.
    fn arg(arg: Arg) -> Arg;
    /// The value parsed for `id`, if any.
    fn get(m: &ArgMatches, id: &str) -> Option<Self>;
}

/// What the command line or the environment gave for `flag` (never a default).
pub fn given<T: Value>(m: &ArgMatches, flag: &str) -> Option<T> {
    match m.value_source(flag) {
        Some(ValueSource::CommandLine | ValueSource::EnvVariable) => T::get(m, flag),
        _ => None,
    }
}

/// The flag of a key: its name, variable, parser and help (the doc comment, then the key).
pub fn arg<T: Value>(flag: &'static str, path: &str, doc: &str) -> Arg {
    let text = doc
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    let text = text.strip_suffix('.').unwrap_or(&text);
    T::arg(
        Arg::new(flag)
            .long(flag)
            .env(env_var(flag))
            .value_name(flag.to_ascii_uppercase().replace('-', "_"))
            .help(format!("{text} (`{path}`)")),
    )
}

/// The `--help` heading of a table's flags (`"[http] settings"`); none at the top.
pub fn heading(prefix: &str) -> Option<String> {
    let table = prefix.strip_suffix('.')?;
    Some(format!("[{table}] settings"))
}

/// Adds a table's flags to `cmd` under its heading, and leaves the heading as it was.
pub fn args_of<S: Section>(cmd: Command, prefix: &str) -> Command {
    let before = cmd.get_next_help_heading().map(str::to_owned);
    let cmd = S::args(cmd, prefix);
    match before {
        Some(h) => cmd.next_help_heading(h),
        None => cmd.next_help_heading(None::<&'static str>),
    }
}

/// [`Value`] for types clap's `value_parser!` knows (`FromStr`, `ValueEnum`, numbers).
macro_rules! parsed {
    ($($t:ty),* $(,)?) => {
        $(
            impl $crate::settings::Value for $t {
                fn arg(arg: clap::Arg) -> clap::Arg {
                    arg.value_parser(clap::value_parser!($t)).action(clap::ArgAction::Set)
                }
                fn get(m: &clap::ArgMatches, id: &str) -> Option<Self> {
                    m.get_one::<$t>(id).cloned()
                }
            }
        )*
    };
}
pub(crate) use parsed;

parsed!(
    String,
    bool,
    u8,
    u16,
    u32,
    u64,
    usize,
    std::net::SocketAddr,
    std::path::PathBuf
);

/// An optional key: the flag sets it.
impl<T: Value> Value for Option<T> {
    fn arg(arg: Arg) -> Arg {
        T::arg(arg)
    }
    fn get(m: &ArgMatches, id: &str) -> Option<Self> {
        T::get(m, id).map(Some)
    }
}

/// A list: the flag is repeatable and takes commas; given, it replaces the file's list.
impl<T: Value> Value for Vec<T> {
    fn arg(arg: Arg) -> Arg {
        T::arg(arg).action(ArgAction::Append).value_delimiter(',')
    }
    fn get(m: &ArgMatches, id: &str) -> Option<Self> {
        m.get_many::<T>(id).map(|v| v.cloned().collect())
    }
}

/// Whether a table is at its default (nested tables are printed only when set).
pub fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}

/// Declares a table of settings: see the [module documentation](self).
macro_rules! section {
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                #[flag($flag:literal $(, $m:ident = $v:expr)*)]
                $(#[via($fty:ty, $apply:expr)])?
                pub $field:ident : $ty:ty = $default:expr,
            )*
            $(
                #[table $(($($tserde:tt)*))?]
                $(#[doc = $tdoc:literal])*
                pub $tfield:ident : $tty:ty $(= $tdefault:expr)?,
            )*
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
            $( $(#[doc = $tdoc])* $(#[serde($($tserde)*)])? pub $tfield: $tty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    $( $field: $default, )*
                    $( $tfield: $crate::settings::section!(@default $($tdefault)?), )*
                }
            }
        }

        impl $crate::settings::Section for $name {
            fn keys(prefix: &str, out: &mut Vec<$crate::settings::Key>) {
                $(
                    out.push($crate::settings::Key {
                        path: format!("{prefix}{}", stringify!($field)),
                        flag: $flag,
                    });
                )*
                $(
                    <$tty as $crate::settings::Section>::keys(
                        &format!("{prefix}{}.", stringify!($tfield)),
                        out,
                    );
                )*
            }

            fn args(cmd: clap::Command, prefix: &str) -> clap::Command {
                let cmd = match $crate::settings::heading(prefix) {
                    Some(h) => cmd.next_help_heading(h),
                    None => cmd,
                };
                $(
                    let cmd = cmd.arg(
                        $crate::settings::arg::<$crate::settings::section!(@flag $ty $(, $fty)?)>(
                            $flag,
                            &format!("{prefix}{}", stringify!($field)),
                            concat!($($doc, "\n"),*),
                        )
                        $(.$m($v))*
                    );
                )*
                $(
                    let cmd = <$tty as $crate::settings::Section>::args(
                        cmd,
                        &format!("{prefix}{}.", stringify!($tfield)),
                    );
                )*
                cmd
            }

            fn apply(&mut self, m: &clap::ArgMatches) {
                $( $crate::settings::section!(@apply self, m, $flag, $field, $ty $(, $fty, $apply)?); )*
                $( <$tty as $crate::settings::Section>::apply(&mut self.$tfield, m); )*
            }
        }
    };
    (@default) => { Default::default() };
    (@default $e:expr) => { $e };
    (@flag $ty:ty) => { $ty };
    (@flag $ty:ty, $fty:ty) => { $fty };
    (@apply $s:ident, $m:ident, $flag:literal, $field:ident, $ty:ty) => {
        if let Some(v) = $crate::settings::given::<$ty>($m, $flag) {
            $s.$field = v;
        }
    };
    (@apply $s:ident, $m:ident, $flag:literal, $field:ident, $ty:ty, $fty:ty, $apply:expr) => {
        if let Some(v) = $crate::settings::given::<$fty>($m, $flag) {
            let set: fn(&mut Self, $fty) = $apply;
            set($s, v);
        }
    };
}
pub(crate) use section;
