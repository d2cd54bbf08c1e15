//! The one coordinator's session: a single-use launch token exchanged for
//! a session cookie, the session's questions (in memory only), and its
//! end (the stop button, or idle too long).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use pluis_proto::pb::{MatchResponse, ScreenProgress, ScreenResponse};
use ring::rand::{SecureRandom, SystemRandom};

use super::text::Lang;

/// How long a launch link is valid.
pub const LAUNCH_VALID: Duration = Duration::from_secs(120);

/// The session cookie's name.
pub const COOKIE: &str = "pluis_session";

/// 32 random bytes as hex.
fn secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no randomness for a session secret"))?;
    Ok(pluis_proto::hex(&bytes))
}

/// Equal without telling by timing how much of a secret was right: the
/// digests are compared, and how much of a digest matches says nothing.
fn same(a: &str, b: &str) -> bool {
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    digest(a).as_ref() == digest(b).as_ref()
}

/// A question asked in this session: what the "my questions" list shows
/// (no identifier), and its answer.
#[derive(Debug, Clone)]
pub struct Asked {
    /// When (Unix ms).
    pub at_ms: i64,
    /// The coordinator's own case reference.
    pub case: String,
    /// The purpose.
    pub purpose: String,
    /// How many persons.
    pub persons: usize,
    /// The answer, with the persons' labels (never their keys).
    pub answer: MatchResponse,
}

/// This session's screening: what was asked, how far it is, and (once
/// done) its answer or the node's error.
#[derive(Debug, Clone)]
pub struct Screening {
    /// When it started (Unix ms).
    pub at_ms: i64,
    /// The purpose.
    pub purpose: String,
    /// The fewest life domains a listed case reaches.
    pub min_domains: u32,
    /// How far the node is (none: not yet told).
    pub progress: Option<ScreenProgress>,
    /// Once done: the answer, or why it failed.
    pub outcome: Option<Result<ScreenResponse, String>>,
}

#[derive(Debug)]
struct State {
    launch: Option<(String, Instant)>,
    session: Option<String>,
    last_seen: Instant,
    ended: bool,
    lang: Lang,
    asked: Vec<Asked>,
    screening: Option<Screening>,
}

/// The UI's one session.
#[derive(Debug)]
pub struct Sessions {
    state: Mutex<State>,
    idle: Duration,
}

/// What a request may see.
#[derive(Debug, PartialEq, Eq)]
pub enum Access {
    /// A live session.
    Granted,
    /// No session, a wrong cookie, or the session ended.
    Denied,
}

impl Sessions {
    /// A fresh launch token (returned), valid [`LAUNCH_VALID`]; sessions
    /// end after `idle` without a request.
    pub fn new(idle: Duration) -> anyhow::Result<(Sessions, String)> {
        let token = secret()?;
        let now = crate::clock::monotonic();
        let sessions = Sessions {
            state: Mutex::new(State {
                launch: Some((token.clone(), now)),
                session: None,
                last_seen: now,
                ended: false,
                lang: Lang::Nl,
                asked: Vec::new(),
                screening: None,
            }),
            idle,
        };
        Ok((sessions, token))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Exchanges the launch token for a session cookie value: once, and
    /// only within [`LAUNCH_VALID`].
    pub fn launch(&self, token: &str) -> Option<String> {
        let mut state = self.lock();
        let (expected, made) = state.launch.take()?;
        if !same(&expected, token) || made.elapsed() > LAUNCH_VALID || state.ended {
            // A wrong guess uses the link up too: no second try.
            return None;
        }
        let session = secret().ok()?;
        state.session = Some(session.clone());
        state.last_seen = crate::clock::monotonic();
        Some(session)
    }

    /// Whether `cookie` is the live session's; touches it.
    pub fn check(&self, cookie: Option<&str>) -> Access {
        let mut state = self.lock();
        if state.ended {
            return Access::Denied;
        }
        if state.session.is_some() && state.last_seen.elapsed() > self.idle {
            end(&mut state);
            return Access::Denied;
        }
        match (&state.session, cookie) {
            (Some(session), Some(cookie)) if same(session, cookie) => {
                state.last_seen = crate::clock::monotonic();
                Access::Granted
            }
            _ => Access::Denied,
        }
    }

    /// Ends the session: its questions and answers are forgotten.
    pub fn end(&self) {
        end(&mut self.lock());
    }

    /// Whether the session has ended (stopped or idle), so the UI may exit.
    pub fn ended(&self) -> bool {
        let mut state = self.lock();
        if state.session.is_some() && !state.ended && state.last_seen.elapsed() > self.idle {
            end(&mut state);
        }
        // An unused launch link that expired ends it too.
        if state.session.is_none()
            && state
                .launch
                .as_ref()
                .is_some_and(|(_, made)| made.elapsed() > LAUNCH_VALID)
        {
            end(&mut state);
        }
        state.ended
    }

    /// The page language.
    pub fn lang(&self) -> Lang {
        self.lock().lang
    }

    /// Sets the page language.
    pub fn set_lang(&self, lang: Lang) {
        self.lock().lang = lang;
    }

    /// Keeps a question and its answer; returns its number.
    pub fn keep(&self, asked: Asked) -> usize {
        let mut state = self.lock();
        state.asked.push(asked);
        state.asked.len() - 1
    }

    /// This session's questions.
    pub fn asked(&self) -> Vec<Asked> {
        self.lock().asked.clone()
    }

    /// This session's question number `n`, if there is one.
    pub fn asked_at(&self, n: usize) -> Option<Asked> {
        self.lock().asked.get(n).cloned()
    }

    /// Starts keeping `screening`, unless one is still running (then
    /// `false`). A finished one is replaced.
    pub fn start_screening(&self, screening: Screening) -> bool {
        let mut state = self.lock();
        let running = state
            .screening
            .as_ref()
            .is_some_and(|s| s.outcome.is_none());
        if running || state.ended {
            return false;
        }
        state.screening = Some(screening);
        true
    }

    /// How far the running screening is.
    pub fn screening_progress(&self, progress: &ScreenProgress) {
        if let Some(s) = self.lock().screening.as_mut() {
            s.progress = Some(*progress);
        }
    }

    /// The running screening's end (dropped if the session ended).
    pub fn screening_done(&self, outcome: Result<ScreenResponse, String>) {
        if let Some(s) = self.lock().screening.as_mut() {
            s.outcome = Some(outcome);
        }
    }

    /// This session's screening, if any.
    pub fn screening(&self) -> Option<Screening> {
        self.lock().screening.clone()
    }
}

fn end(state: &mut State) {
    state.ended = true;
    state.session = None;
    state.launch = None;
    state.asked.clear();
    state.screening = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launch_token_opens_one_session_once() {
        let (sessions, token) = Sessions::new(Duration::from_secs(60)).unwrap();
        assert_eq!(sessions.check(None), Access::Denied);
        assert!(sessions.launch("wrong").is_none());
        // The wrong guess used the link up.
        assert!(sessions.launch(&token).is_none());
        let (sessions, token) = Sessions::new(Duration::from_secs(60)).unwrap();
        let cookie = sessions.launch(&token).unwrap();
        assert!(sessions.launch(&token).is_none(), "single use");
        assert_eq!(sessions.check(Some(&cookie)), Access::Granted);
        assert_eq!(sessions.check(Some("other")), Access::Denied);
        sessions.end();
        assert_eq!(sessions.check(Some(&cookie)), Access::Denied);
        assert!(sessions.ended());
    }

    #[test]
    fn an_idle_session_ends_and_forgets_its_answers() {
        let (sessions, token) = Sessions::new(Duration::ZERO).unwrap();
        let cookie = sessions.launch(&token).unwrap();
        sessions.keep(Asked {
            at_ms: 0,
            case: "Z-1".into(),
            purpose: "p".into(),
            persons: 1,
            answer: MatchResponse::default(),
        });
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(sessions.check(Some(&cookie)), Access::Denied);
        assert!(sessions.ended());
        assert!(sessions.asked().is_empty());
    }
}
