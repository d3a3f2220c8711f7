//! How a request authenticates: static credentials applied as a header or query
//! parameter, or an OAuth2 session whose token may be refreshed.

use std::sync::Arc;

use base64::Engine as _;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};

use super::error::HttpError;
use super::oauth2::OAuth2Session;

/// A system's authentication, ready to apply.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    /// A fixed header (API key, bearer token, basic auth).
    Header(HeaderName, HeaderValue),
    /// A fixed query parameter (API key in the URL).
    Query(String, String),
    OAuth2(Arc<OAuth2Session>),
}

/// What one request carries, and the token generation it used (for a refresh after a
/// 401).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub header: Option<(HeaderName, HeaderValue)>,
    pub query: Option<(String, String)>,
    pub generation: Option<u64>,
}

impl Auth {
    pub fn bearer(token: &str) -> Result<Auth, HttpError> {
        Ok(Auth::Header(
            AUTHORIZATION,
            sensitive(&format!("Bearer {token}"))?,
        ))
    }

    pub fn basic(username: &str, password: &str) -> Result<Auth, HttpError> {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        Ok(Auth::Header(
            AUTHORIZATION,
            sensitive(&format!("Basic {encoded}"))?,
        ))
    }

    pub fn api_key_header(name: &str, key: &str) -> Result<Auth, HttpError> {
        let name = HeaderName::try_from(name)
            .map_err(|e| HttpError::Setup(format!("`{name}` is not a header name: {e}")))?;
        Ok(Auth::Header(name, sensitive(key)?))
    }

    /// The credentials for the next request (fetching an OAuth2 token if needed).
    pub async fn credentials(&self) -> Result<Credentials, HttpError> {
        let none = Credentials {
            header: None,
            query: None,
            generation: None,
        };
        Ok(match self {
            Auth::None => none,
            Auth::Header(name, value) => Credentials {
                header: Some((name.clone(), value.clone())),
                ..none
            },
            Auth::Query(name, value) => Credentials {
                query: Some((name.clone(), value.clone())),
                ..none
            },
            Auth::OAuth2(session) => {
                let token = session.token().await?;
                Credentials {
                    header: Some((
                        AUTHORIZATION,
                        sensitive(&format!("Bearer {}", token.value))?,
                    )),
                    query: None,
                    generation: Some(token.generation),
                }
            }
        })
    }

    /// After a 401 with `used`: refreshes an OAuth2 token (once for all requests that
    /// met the same 401) and says whether a retry can succeed.
    pub async fn refresh(&self, used: &Credentials) -> Result<bool, HttpError> {
        match (self, used.generation) {
            (Auth::OAuth2(session), Some(generation)) => {
                session.refresh(generation).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// A header value marked sensitive, so HTTP debug output never shows it.
fn sensitive(value: &str) -> Result<HeaderValue, HttpError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        HttpError::Setup("a credential contains characters a header cannot carry".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}
