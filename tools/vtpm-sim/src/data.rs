//! swtpm's data channel: raw TPM 2.0 commands, framed by their own header's size field, at the
//! locality the control channel set; or, as swtpm also accepts, the Microsoft simulator's
//! `TPM_SEND_COMMAND` frame (command 8, locality, length), answered with its length prefix
//! and trailing acknowledgement.
//!
//! A frame that is too short, too large or cut off closes its connection with a log line; the
//! TPM has not seen it.

use crate::swtpm::Ctx;
use crate::{MAX_FRAME, log};
use std::io::{self, BufRead, Read, Write};

/// Serves commands read from `r`, answering on `w`, until the client hangs up or sends a bad
/// frame.
pub(crate) fn serve(mut r: impl BufRead, mut w: impl Write, ctx: &Ctx, peer: &str) {
    if let Err(e) = frames(&mut r, &mut w, ctx) {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            log!("closing data connection from {peer}: command cut off");
        } else {
            log!("closing data connection from {peer}: {e}");
        }
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn frames(r: &mut impl BufRead, w: &mut impl Write, ctx: &Ctx) -> io::Result<()> {
    loop {
        // The client may hang up between commands; a hang-up inside one is a cut-off command.
        if r.fill_buf()?.is_empty() {
            return Ok(());
        }
        let mut head = [0u8; 6];
        r.read_exact(&mut head)?;
        let mssim = head[..4] == [0, 0, 0, 8];
        let (locality, cmd) = if mssim {
            let mut rest = [0u8; 3];
            r.read_exact(&mut rest)?;
            let len = u32::from_be_bytes([head[5], rest[0], rest[1], rest[2]]);
            if len > MAX_FRAME {
                return Err(bad(format!("command frame of {len} bytes")));
            }
            let mut cmd = vec![0u8; len as usize];
            r.read_exact(&mut cmd)?;
            (Some(head[4]), cmd)
        } else {
            let size = u32::from_be_bytes([head[2], head[3], head[4], head[5]]);
            if !(10..=MAX_FRAME).contains(&size) {
                return Err(bad(format!("command of {size} bytes")));
            }
            let mut cmd = vec![0u8; size as usize];
            cmd[..6].copy_from_slice(&head);
            r.read_exact(&mut cmd[6..])?;
            (None, cmd)
        };
        let resp = {
            let mut g = ctx.lock();
            let loc = locality.unwrap_or(g.locality);
            g.execute(loc, &cmd)
        };
        let mut out = Vec::with_capacity(resp.len() + 8);
        if mssim {
            out.extend_from_slice(&(resp.len() as u32).to_be_bytes());
        }
        out.extend_from_slice(&resp);
        if mssim {
            out.extend_from_slice(&0u32.to_be_bytes());
        }
        w.write_all(&out)?;
    }
}

/// Reads of a stream as they come (for `BufReader` over a type that is only `Read`).
pub(crate) fn buffered<R: Read>(r: R) -> io::BufReader<R> {
    io::BufReader::with_capacity(MAX_FRAME as usize + 16, r)
}
