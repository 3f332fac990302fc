//! Homer's REST API: log in, keep IP aliases, find a LOG row by its correlation id. Used
//! by `heplink homer check` and by the agent's alias keeper ([`aliases`]).
//!
//! Two dialects, found at login (v3 first; a 404 there means v4):
//! - **v3**, homer-app (Homer 7), as recorded from homer-app 1.4.18 in
//!   `reference/homer-app-api.md`: `POST /api/v3/auth`, `/api/v3/alias` (`guid`,
//!   `captureID`), `/api/v3/search/call/data`;
//! - **v4**, Homer 11, as its source reads (`sipcapture/homer` `handlers/auth_v4.go`,
//!   `aliases_v4.go`): `POST /api/v4/auth/sessions` (`{"data":{"token"}}`),
//!   `/api/v4/aliases` (`capture_id`; create answers `{"data":"<guid>"}`, delete 204).
//!   Aliases only: the probe search is v3's.
//!
//! homer-app answers most successes, reads included, with **201**, reports some failures
//! as a 2xx with an empty body or `data == ""`, and closes the connection without an
//! answer when a handler panics; this client checks the body of every answer, never the
//! status alone, and bounds every request with a deadline.

pub mod aliases;
pub mod http;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use http::{Base, HttpError};

/// Deadline of one request.
const DEADLINE: Duration = Duration::from_secs(5);

/// A failed API call, with what it means for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request did not complete.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// Login refused.
    #[error("Homer refused the credentials of user {user:?} (HTTP {status}: {message})")]
    Credentials {
        /// The user.
        user: String,
        /// The status.
        status: u16,
        /// homer-app's message.
        message: String,
    },
    /// An answer that says the call did nothing, or that is not what the API answers.
    #[error("Homer API {call}: {what} (HTTP {status}: {body})")]
    Refused {
        /// Which call.
        call: &'static str,
        /// What was wrong.
        what: &'static str,
        /// The status.
        status: u16,
        /// The body, cut.
        body: String,
    },
}

/// An IP alias (homer-app's `TableAlias`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    /// Its key (from the server; not sent on create).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub guid: String,
    /// The name shown for the address (at most 40 characters).
    pub alias: String,
    /// A plain IP address.
    pub ip: String,
    /// The port; 0 = any port of the address.
    pub port: u16,
    /// The prefix length (32 or 128 for one host).
    pub mask: u8,
    /// Only used when homer-app resolves by capture id; `"0"` otherwise.
    #[serde(rename = "captureID")]
    pub capture_id: String,
    /// Only active aliases are applied.
    pub status: bool,
}

impl Alias {
    /// An active alias for one host (`port` 0: any port), the name cut to homer-app's 40
    /// characters.
    pub fn host(name: &str, ip: std::net::IpAddr, port: u16) -> Alias {
        Alias {
            guid: String::new(),
            alias: name.chars().take(40).collect(),
            ip: ip.to_string(),
            port,
            mask: if ip.is_ipv4() { 32 } else { 128 },
            capture_id: "0".into(),
            status: true,
        }
    }
}

/// Which API a Homer speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// homer-app's `/api/v3` (Homer 7).
    V3,
    /// Homer 11's `/api/v4`.
    V4,
}

/// A logged-in client of Homer's API.
#[derive(Debug, Clone)]
pub struct Api {
    base: Base,
    tls: crate::tls::TlsClient,
    user: String,
    password: String,
    token: Option<String>,
    dialect: Dialect,
}

fn cut(b: &[u8]) -> String {
    let t = String::from_utf8_lossy(b);
    t.chars().take(200).collect()
}

impl Api {
    /// A client of the API at `url` (`http://HOST:PORT`), not logged in yet.
    pub fn new(
        url: &str,
        user: &str,
        password: &str,
        tls: crate::tls::TlsClient,
    ) -> Result<Api, ApiError> {
        Ok(Api {
            base: Base::parse(url)?,
            tls,
            user: user.into(),
            password: password.into(),
            token: None,
            dialect: Dialect::V3,
        })
    }

    /// The API the server speaks (known after [`Api::login`]).
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The API's `host:port`.
    pub fn address(&self) -> &str {
        self.base.address()
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<http::Answer, ApiError> {
        let body = body.map(|b| b.to_string().into_bytes());
        Ok(http::request(
            &self.base,
            &self.tls,
            method,
            path,
            self.token.as_deref(),
            body.as_deref(),
            DEADLINE,
        )
        .await?)
    }

    /// Logs in (`POST /api/v3/auth`, or Homer 11's `POST /api/v4/auth/sessions` when the
    /// first is not there) and keeps the token.
    pub async fn login(&mut self) -> Result<(), ApiError> {
        self.token = None;
        let creds = json!({"username": self.user, "password": self.password});
        let mut a = self.call("POST", "/api/v3/auth", Some(&creds)).await?;
        self.dialect = Dialect::V3;
        if a.status == 404 {
            a = self
                .call("POST", "/api/v4/auth/sessions", Some(&creds))
                .await?;
            self.dialect = Dialect::V4;
        }
        let v: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
        let token = match self.dialect {
            Dialect::V3 => v["token"].as_str(),
            Dialect::V4 => v["data"]["token"].as_str(),
        };
        match token {
            Some(t) if (200..300).contains(&a.status) && !t.is_empty() => {
                self.token = Some(t.to_owned());
                Ok(())
            }
            _ if a.status == 401 || a.status == 400 || a.status == 403 => {
                Err(ApiError::Credentials {
                    user: self.user.clone(),
                    status: a.status,
                    message: cut(&a.body),
                })
            }
            _ => Err(ApiError::Refused {
                call: "login",
                what: "no token in the answer",
                status: a.status,
                body: cut(&a.body),
            }),
        }
    }

    /// Calls, logging in first if needed and again once when the token was refused.
    async fn authed(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<http::Answer, ApiError> {
        if self.token.is_none() {
            self.login().await?;
        }
        let a = self.call(method, path, body).await?;
        if a.status == 401 || a.status == 400 && a.body.windows(3).any(|w| w == b"jwt") {
            self.login().await?;
            return self.call(method, path, body).await;
        }
        Ok(a)
    }

    /// Every alias (`GET /api/v3/alias`, or `/api/v4/aliases`, up to 1,000).
    pub async fn aliases(&mut self) -> Result<Vec<Alias>, ApiError> {
        if self.token.is_none() {
            self.login().await?;
        }
        let path = match self.dialect {
            Dialect::V3 => "/api/v3/alias",
            Dialect::V4 => "/api/v4/aliases?page%5Blimit%5D=1000",
        };
        let a = self.authed("GET", path, None).await?;
        let v: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
        let items = match self.dialect {
            Dialect::V3 => &v["data"],
            Dialect::V4 => &v["data"]["items"],
        };
        let Some(items) = items.as_array().filter(|_| (200..300).contains(&a.status)) else {
            return Err(ApiError::Refused {
                call: "list aliases",
                what: "not a list of aliases",
                status: a.status,
                body: cut(&a.body),
            });
        };
        Ok(items
            .iter()
            .map(|i| Alias {
                guid: i["guid"].as_str().unwrap_or("").to_owned(),
                alias: i["alias"].as_str().unwrap_or("").to_owned(),
                ip: i["ip"].as_str().unwrap_or("").to_owned(),
                port: i["port"].as_u64().unwrap_or(0) as u16,
                mask: i["mask"].as_u64().unwrap_or(0) as u8,
                capture_id: i["captureID"]
                    .as_str()
                    .or(i["capture_id"].as_str())
                    .unwrap_or("")
                    .to_owned(),
                status: i["status"].as_bool().unwrap_or(false),
            })
            .collect())
    }

    /// Creates an alias (`POST /api/v3/alias` or `/api/v4/aliases`); returns its guid. A
    /// 2xx without the guid (homer-app's silent database failure) is an error.
    pub async fn create_alias(&mut self, alias: &Alias) -> Result<String, ApiError> {
        if self.token.is_none() {
            self.login().await?;
        }
        let (path, body) = match self.dialect {
            Dialect::V3 => (
                "/api/v3/alias",
                serde_json::to_value(Alias {
                    guid: String::new(),
                    ..alias.clone()
                })
                .expect("an alias serialises"),
            ),
            Dialect::V4 => (
                "/api/v4/aliases",
                json!({"alias": alias.alias, "ip": alias.ip, "port": alias.port,
                       "mask": alias.mask, "capture_id": alias.capture_id,
                       "status": alias.status}),
            ),
        };
        let a = self.authed("POST", path, Some(&body)).await?;
        let v: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
        match v["data"].as_str() {
            Some(guid) if (200..300).contains(&a.status) && !guid.is_empty() => Ok(guid.into()),
            _ => Err(ApiError::Refused {
                call: "create alias",
                what: "no guid in the answer: nothing was stored",
                status: a.status,
                body: cut(&a.body),
            }),
        }
    }

    /// Deletes an alias (`DELETE /api/v3/alias/{guid}` or `/api/v4/aliases/{guid}`); false
    /// when it was not there.
    pub async fn delete_alias(&mut self, guid: &str) -> Result<bool, ApiError> {
        if self.token.is_none() {
            self.login().await?;
        }
        let path = match self.dialect {
            Dialect::V3 => format!("/api/v3/alias/{guid}"),
            Dialect::V4 => format!("/api/v4/aliases/{guid}"),
        };
        let a = self.authed("DELETE", &path, None).await?;
        if self.dialect == Dialect::V4 {
            return match a.status {
                204 | 200 => Ok(true),
                404 => Ok(false),
                status => Err(ApiError::Refused {
                    call: "delete alias",
                    what: "not a delete answer",
                    status,
                    body: cut(&a.body),
                }),
            };
        }
        let v: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
        match v["data"].as_str() {
            Some(g) if (200..300).contains(&a.status) => Ok(g == guid),
            _ => Err(ApiError::Refused {
                call: "delete alias",
                what: "not a delete answer",
                status: a.status,
                body: cut(&a.body),
            }),
        }
    }

    /// How many LOG rows carry correlation id `sid` between `from_ms` and `to_ms`
    /// (`POST /api/v3/search/call/data` on `100_default`; `to` is padded by a second,
    /// as homer-app truncates it to whole seconds).
    pub async fn count_log_rows(
        &mut self,
        sid: &str,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<u64, ApiError> {
        if self.dialect == Dialect::V4 {
            return Err(ApiError::Refused {
                call: "search",
                what: "the probe search speaks homer-app's v3 API only; this Homer answers v4 (Homer 11)",
                status: 0,
                body: String::new(),
            });
        }
        let body = json!({
            "timestamp": {"from": from_ms, "to": to_ms + 1000},
            "param": {"search": {"100_default": [
                {"name": "sid", "value": sid, "type": "string", "hepid": 100},
                {"name": "limit", "value": "1000", "type": "string", "hepid": 100}
            ]}}
        });
        let a = self
            .authed("POST", "/api/v3/search/call/data", Some(&body))
            .await?;
        let v: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
        match (v["total"].as_u64(), v["data"].as_array()) {
            (Some(_), Some(rows)) => Ok(rows
                .iter()
                .filter(|r| r["sid"].as_str() == Some(sid))
                .count() as u64),
            _ => Err(ApiError::Refused {
                call: "search",
                what: "not a search answer",
                status: a.status,
                body: cut(&a.body),
            }),
        }
    }
}
