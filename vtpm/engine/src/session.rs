//! Authorisation sessions. Password authorisation (TPM_RS_PW) is complete; HMAC and policy
//! sessions are not implemented yet, so a session handle other than TPM_RS_PW in the
//! authorisation area is answered with TPM_RC_VALUE for that session.

use crate::Platform;
use crate::cc::Role;
use crate::engine::{AuthIn, Tpm, sattr};
use crate::handle as h;
use crate::rc::Rc;
use alloc::vec::Vec;

/// A loaded session (placeholder until HMAC/policy sessions exist).
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub(crate) handle: u32,
}

/// What processing one authorisation produced, for the response area.
#[derive(Clone, Debug)]
pub(crate) struct SessionUse {
    pub(crate) attrs: u8,
}

impl<P: Platform> Tpm<P> {
    pub(crate) fn session_index(&self, hdl: u32) -> Option<usize> {
        self.v.sessions.iter().position(|s| s.as_ref().map(|s| s.handle) == Some(hdl))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn check_one_session(
        &mut self,
        a: &AuthIn,
        n: u32,
        bound: Option<u32>,
        role: Role,
        _cc: u32,
        _names: &[Vec<u8>],
        _params: &[u8],
    ) -> Result<SessionUse, Rc> {
        if a.handle != h::RS_PW {
            return Err(Rc::VALUE.session(n));
        }
        // A password session has an empty nonce, continueSession and nothing else.
        if !a.nonce_caller.is_empty() {
            return Err(Rc::NONCE.session(n));
        }
        if a.attrs & !sattr::CONTINUE != 0 {
            return Err(Rc::ATTRIBUTES.session(n));
        }
        let Some(hdl) = bound else {
            return Err(Rc::AUTH_CONTEXT);
        };
        if !self.auth_value_allowed(hdl, role) {
            return Err(Rc::AUTH_UNAVAILABLE);
        }
        if self.entity_da_protected(hdl) && self.in_lockout() {
            return Err(Rc::LOCKOUT);
        }
        if hdl == h::RH_LOCKOUT && self.p.lockout_locked {
            return Err(Rc::LOCKOUT);
        }
        self.check_password(hdl, &a.hmac, n)?;
        Ok(SessionUse { attrs: a.attrs })
    }

    pub(crate) fn decrypt_param(
        &mut self,
        _auths: &[AuthIn],
        _uses: &[SessionUse],
        _params: &[u8],
    ) -> Result<Option<Vec<u8>>, Rc> {
        Ok(None)
    }

    pub(crate) fn encrypt_param(&mut self, _auths: &[AuthIn], _uses: &mut [SessionUse], _params: &mut [u8]) {}

    pub(crate) fn response_sessions(
        &mut self,
        _auths: &[AuthIn],
        uses: &mut [SessionUse],
        _cc: u32,
        _params: &[u8],
    ) -> Vec<u8> {
        let mut w = crate::marshal::Writer::new();
        for u in uses.iter() {
            // Password session: empty nonce, continueSession set, empty HMAC.
            w.u16(0).u8(u.attrs | sattr::CONTINUE).u16(0);
        }
        w.into_vec()
    }
}

impl<P: Platform> Tpm<P> {
    pub(crate) fn flush_session(&mut self, hdl: u32) -> bool {
        if let Some(i) = self.session_index(hdl) {
            self.v.sessions[i] = None;
            return true;
        }
        let before = self.v.saved_sessions.len();
        self.v.saved_sessions.retain(|s| s.0 != hdl);
        before != self.v.saved_sessions.len()
    }
    pub(crate) fn save_session(&mut self, _hdl: u32) -> Result<Vec<u8>, Rc> {
        Err(Rc::HANDLE)
    }
    pub(crate) fn mark_session_saved(&mut self, _hdl: u32, _seq: u64) {}
    pub(crate) fn load_session(&mut self, _hdl: u32, _seq: u64, _plain: &[u8]) -> Result<(), Rc> {
        Err(Rc::HANDLE.param(1))
    }
}
