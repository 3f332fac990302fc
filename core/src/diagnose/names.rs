//! Names for what heplink draws: short enough for homer-ui's column header (about 14
//! characters), the distinguishing part first and the role visible:
//!
//! | who | short name | alias (≤ 40 characters) |
//! |---|---|---|
//! | a VideoRoom publisher | `Alice ▲` | `Alice ▲ · room 4242` |
//! | a VideoRoom subscriber (the n-th of its room) | `s2◂Alice` (`s2◂Alice+Bob`) | `s2◂Alice · room 4242` |
//! | an AudioBridge or TextRoom participant | `Alice ●` | `Alice ● · audiobridge 7` |
//! | the WebRTC side of a SIP-plugin call | `carol ☎` | `carol ☎ · sip` |
//! | the SIP far end (the INVITE's To, or From when Janus is called) | `☎ frontdesk` | `☎ frontdesk · sip far end` |
//! | any other PeerConnection (echotest, …) | `echo-1 ●` | `echo-1 ● · echotest` |
//! | Janus's media address | | `janus <emitter>` |
//! | Janus's SIP stack | | `janus sip <emitter>` |
//! | Janus's API side (the synthetic address of signalling) | | `janus api` |
//! | the API client (HTTP/WebSocket) | | `api <ip>` |
//!
//! Every alias heplink makes ends with [`MARK`] (an invisible word joiner), so that a later
//! run knows its own aliases from an operator's.

/// Characters of a column header homer-ui shows.
pub const HEAD: usize = 14;
/// Longest alias homer-app stores, characters.
pub const MAX_ALIAS: usize = 40;
/// The invisible mark that ends every alias heplink makes (U+2060 WORD JOINER).
pub const MARK: char = '\u{2060}';

/// The role of a PeerConnection, as its name shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A VideoRoom publisher (`▲`: sends up to Janus).
    Publisher,
    /// A VideoRoom subscriber (`◂`: receives the feeds named after it).
    Subscriber,
    /// An AudioBridge or TextRoom participant (`●`).
    Participant,
    /// The WebRTC side of a SIP-plugin call (`☎`).
    Sip,
    /// Any other plugin's PeerConnection (`●`).
    Other,
}

impl Role {
    /// The word for it in summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Publisher => "publisher",
            Role::Subscriber => "subscriber",
            Role::Participant => "participant",
            Role::Sip => "sip",
            Role::Other => "peer",
        }
    }
}

/// The first `n` characters of `s`.
pub fn chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The head of a name as homer-ui shows it.
pub fn head(name: &str) -> &str {
    chars(name, HEAD)
}

/// Control characters and the mark out (a name is one line of words).
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() || c == MARK { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The short name of a PeerConnection. `who`: its display name, else its opaque id, else
/// its handle; `nth`: a subscriber's number in its room (0: the subscriber is known by
/// `who`, a participant's own display name); `feeds`: the names of the publishers a
/// subscriber receives.
pub fn short(role: Role, who: &str, nth: usize, feeds: &[String]) -> String {
    let who = clean(who);
    match role {
        // The glyph stays within the head: the name is cut to leave it room.
        Role::Publisher => format!("{} ▲", chars(&who, HEAD - 2)),
        Role::Participant | Role::Other => format!("{} ●", chars(&who, HEAD - 2)),
        Role::Sip => format!("{} ☎", chars(&who, HEAD - 2)),
        Role::Subscriber => {
            let mut s = if nth == 0 {
                format!("{}◂", chars(&who, 8))
            } else {
                format!("s{nth}◂")
            };
            if feeds.is_empty() {
                s.push('?');
            }
            for (i, f) in feeds.iter().enumerate() {
                if i > 0 {
                    s.push('+');
                }
                s.push_str(&clean(f));
            }
            chars(&s, 24).to_string()
        }
    }
}

/// Who a handle is when nothing better is known: the last 4 digits of its id.
pub fn handle_tag(hid: u64) -> String {
    format!("h{:04}", hid % 10_000)
}

/// An alias: the short name, then the context, cut to homer-app's 40 characters with the
/// mark last.
pub fn alias(short: &str, context: &str) -> String {
    let mut s = clean(short);
    if !context.is_empty() {
        s.push_str(" · ");
        s.push_str(&clean(context));
    }
    let mut s = chars(&s, MAX_ALIAS - 1).to_string();
    s.push(MARK);
    s
}

/// Whether an alias is one heplink makes: marked, or named as earlier versions named
/// theirs (`janus …`, `… (<room>, publisher|subscriber)`, `… (sip)`).
pub fn is_ours(name: &str) -> bool {
    name.ends_with(MARK)
        || name.starts_with("janus ")
        || name.ends_with(", publisher)")
        || name.ends_with(", subscriber)")
        || name.ends_with(" (sip)")
}

/// Whether an alias of ours names Janus itself (kept across restarts, never ended).
pub fn is_janus(name: &str) -> bool {
    name.starts_with("janus ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_stays_in_the_head() {
        let p = short(Role::Publisher, "Alexandra Montgomery-Smith", 0, &[]);
        assert_eq!(head(&p), "Alexandra Mo ▲");
        assert!(head(&p).ends_with('▲'));
        let s = short(Role::Subscriber, "", 2, &["Alice".into(), "Bob".into()]);
        assert_eq!(s, "s2◂Alice+Bob");
        assert_eq!(short(Role::Subscriber, "", 1, &[]), "s1◂?");
        assert_eq!(
            short(Role::Subscriber, "Bob", 0, &["Alice".into()]),
            "Bob◂Alice"
        );
        assert_eq!(short(Role::Sip, "carol\n", 0, &[]), "carol ☎");
    }

    #[test]
    fn aliases_are_marked_and_fit() {
        let a = alias(&"x".repeat(60), "room 1");
        assert_eq!(a.chars().count(), MAX_ALIAS);
        assert!(is_ours(&a));
        assert!(!is_ours("Alice"));
        assert!(is_ours("alice (1234, publisher)"));
        assert!(is_ours("janus janus-eu-1"));
        assert_eq!(alias("Alice ▲", "room 4242"), "Alice ▲ · room 4242\u{2060}");
    }
}
