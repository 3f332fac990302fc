//! The columns of a flow drawing: what each address is (Janus, a participant, a
//! subscriber, a client, a SIP party) and the order they are drawn in.

use std::collections::HashSet;

use super::Step;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Janus's side of a Janus event.
    Janus,
    /// A client whose display name is known.
    Participant,
    /// A client without a name.
    Client,
    /// Only in SIP messages or packets without the agent's facts.
    Other,
}

#[derive(Debug)]
pub(super) struct Column {
    pub(super) addr: String,
    pub(super) role: Role,
    /// The participants this column stands for (or, for Janus, serves).
    pub(super) names: Vec<String>,
    /// For a subscriber's columns: the names of the publishers it receives.
    pub(super) feeds: Vec<String>,
    pub(super) sip: bool,
}

impl Column {
    /// Janus's signalling side, or a client's: no port (not tied to a PeerConnection).
    fn signalling(&self) -> bool {
        self.addr.ends_with(":0")
    }

    pub(super) fn title_and_detail(&self) -> (String, String) {
        let names = self.names.join(", ");
        let feeds = format!("to {}", self.feeds.join(", "));
        match self.role {
            Role::Janus if self.signalling() => ("Janus".into(), "signalling".into()),
            Role::Janus if !names.is_empty() => ("Janus".into(), format!("media · {names}")),
            Role::Janus if !self.feeds.is_empty() => ("Janus".into(), format!("media · {feeds}")),
            Role::Janus => ("Janus".into(), "media".into()),
            Role::Participant if self.names.len() == 1 => (names, "participant".into()),
            Role::Participant => (names, "participants".into()),
            Role::Client if !self.feeds.is_empty() => ("subscriber".into(), feeds),
            Role::Client => ("client".into(), "no name known".into()),
            Role::Other if self.sip => ("SIP".into(), String::new()),
            Role::Other => (String::new(), String::new()),
        }
    }
}

/// The columns of a flow: what each address is, ordered for reading: the signalling
/// columns (no port) first, then each client's address followed by Janus's media address
/// for it (the two ends of one PeerConnection side by side).
///
/// Over 80 lines: one pass per role, in reading order (signalling, participants,
/// subscribers, clients beside their media column); each pass is a few lines.
pub(super) fn columns(steps: &[Step]) -> Vec<Column> {
    let janus: HashSet<&str> = steps.iter().filter_map(|s| s.janus.as_deref()).collect();
    // A publisher's name by participant id, for the subscribers' feeds.
    let mut publishers: Vec<(u64, &str)> = Vec::new();
    for s in steps {
        if let (Some(p), Some((name, _))) = (s.participant, &s.display) {
            if !publishers.iter().any(|(q, _)| *q == p) {
                publishers.push((p, name));
            }
        }
    }
    let feed_name = |id: u64| {
        publishers
            .iter()
            .find(|(p, _)| *p == id)
            .map_or_else(|| id.to_string(), |(_, n)| n.to_string())
    };
    let mut cols: Vec<Column> = Vec::new();
    // Each Janus media column's client (the other end of its first arrow).
    let mut partner: Vec<(String, String)> = Vec::new();
    for s in steps {
        for a in [&s.src, &s.dst] {
            let col = match cols.iter().position(|c| &c.addr == a) {
                Some(i) => &mut cols[i],
                None => {
                    cols.push(Column {
                        addr: a.clone(),
                        role: Role::Other,
                        names: Vec::new(),
                        feeds: Vec::new(),
                        sip: false,
                    });
                    cols.last_mut().expect("pushed")
                }
            };
            col.sip |= s.group.as_deref() == Some("sip") && s.janus.is_none();
            if col.role == Role::Other && s.janus.is_some() {
                col.role = Role::Client;
            }
        }
        if let Some(j) = s.janus.as_deref() {
            let other = if s.src == j { &s.dst } else { &s.src };
            if !j.ends_with(":0") && !other.ends_with(":0") && !partner.iter().any(|(m, _)| m == j)
            {
                partner.push((j.to_string(), other.clone()));
            }
            // A subscriber's feeds name both ends of its PeerConnection, not the
            // signalling columns every handle shares.
            for a in [j, other.as_str()]
                .into_iter()
                .filter(|a| !a.ends_with(":0"))
            {
                if let Some(c) = cols.iter_mut().find(|c| c.addr == a) {
                    for f in &s.feeds {
                        let n = feed_name(*f);
                        if !c.feeds.contains(&n) {
                            c.feeds.push(n);
                        }
                    }
                }
            }
        }
        if let Some((name, client)) = &s.display {
            for a in [Some(client.as_str()), s.janus.as_deref()]
                .into_iter()
                .flatten()
            {
                if let Some(c) = cols.iter_mut().find(|c| c.addr == a) {
                    if !c.names.contains(name) {
                        c.names.push(name.clone());
                    }
                }
            }
        }
    }
    for c in &mut cols {
        if janus.contains(c.addr.as_str()) {
            c.role = Role::Janus;
        } else if !c.names.is_empty() {
            c.role = Role::Participant;
        }
    }
    order(cols, &partner)
}

/// Signalling columns first, then each client followed by Janus's media columns for it
/// (`partner`: Janus media address → its client), then any media column left.
fn order(cols: Vec<Column>, partner: &[(String, String)]) -> Vec<Column> {
    let (mut first, mut rest): (Vec<Column>, Vec<Column>) =
        cols.into_iter().partition(|c| c.signalling());
    let mut media: Vec<Column> = Vec::new();
    let mut clients: Vec<Column> = Vec::new();
    for c in rest.drain(..) {
        let paired = c.role == Role::Janus && partner.iter().any(|(m, _)| *m == c.addr);
        if paired {
            media.push(c);
        } else {
            clients.push(c);
        }
    }
    for c in clients {
        let addr = c.addr.clone();
        first.push(c);
        while let Some(i) = media.iter().position(|m| {
            partner
                .iter()
                .any(|(j, client)| *j == m.addr && *client == addr)
        }) {
            first.push(media.remove(i));
        }
    }
    // Janus media columns whose client is a signalling column (or not drawn).
    first.extend(media);
    first
}
