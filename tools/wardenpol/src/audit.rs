//! `wardenpol audit`: decodes Warden audit records into `avc:` lines or JSON, with type names
//! from the policy that decided (checked by its hash; records of another policy show numbers).
//!
//! Accepted input: a binary dump as the audit-read hypercall writes it (header + records), raw
//! 96-byte records back to back, or text holding `audit-hex SEQ HALF HEX` console lines (what
//! the test auditor domain prints) or one record in hex per line.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use warden_ipc::audit::{DecodeError, HEADER_MAGIC, RECORD_LEN, RECORD_MAGIC, Record, decode_dump};

use crate::{Format, Outcome, ToolError, compile, render};

/// What the input held.
struct Decoded {
    records: Vec<Record>,
    /// From a dump header: records dropped before they were read, next sequence number.
    header: Option<(u64, u64)>,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    let err = |e: DecodeError| e.to_string();
    if bytes.starts_with(&HEADER_MAGIC) {
        let (h, recs) = decode_dump(bytes).map_err(err)?;
        return Ok(Decoded { records: recs.collect(), header: Some((h.dropped, h.next_seq)) });
    }
    if bytes.starts_with(&RECORD_MAGIC) {
        if !bytes.len().is_multiple_of(RECORD_LEN) {
            return Err(err(DecodeError::Truncated));
        }
        let records = bytes.chunks(RECORD_LEN).map(Record::decode).collect::<Result<_, _>>().map_err(err)?;
        return Ok(Decoded { records, header: None });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "neither audit data nor text".to_string())?;
    let mut halves: BTreeMap<u64, [Option<Vec<u8>>; 2]> = BTreeMap::new();
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bad = || format!("line {}: not an audit record", n + 1);
        if let Some(rest) = line.split("audit-hex ").nth(1) {
            let w: Vec<&str> = rest.split_whitespace().collect();
            let [seq, half, hex] = w[..] else { return Err(bad()) };
            let (Ok(seq), Ok(half), Some(b)) = (seq.parse::<u64>(), half.parse::<usize>(), unhex(hex)) else {
                return Err(bad());
            };
            let slot = halves.entry(seq).or_default();
            *slot.get_mut(half).ok_or_else(bad)? = Some(b);
        } else if !line.trim().is_empty() {
            let b = unhex(line.trim()).ok_or_else(bad)?;
            records.push(Record::decode(&b).map_err(|e| format!("line {}: {e}", n + 1))?);
        }
    }
    for (seq, [a, b]) in halves {
        let (Some(a), Some(b)) = (a, b) else { return Err(format!("record {seq}: only half of it is present")) };
        records.push(Record::decode(&[a, b].concat()).map_err(|e| format!("record {seq}: {e}"))?);
    }
    Ok(Decoded { records, header: None })
}

/// Runs `wardenpol audit INPUT [--policy P]`.
pub(crate) fn run(fmt: Format, input: &Path, policy: Option<&Path>) -> Result<Outcome, ToolError> {
    let bytes = std::fs::read(input).map_err(|source| ToolError::Read { path: input.to_path_buf(), source })?;
    let blob = match policy {
        None => None,
        Some(p) if p.extension().is_some_and(|e| e == "wpol") => {
            let src = crate::read(p)?;
            match compile(&src.text) {
                Ok(c) => Some(c.to_binary()),
                Err(d) => {
                    eprint!("{}", render(&src.name, &src.text, &d));
                    return Ok(Outcome::PolicyFailed);
                }
            }
        }
        Some(p) => Some(std::fs::read(p).map_err(|source| ToolError::Read { path: p.to_path_buf(), source })?),
    };
    let loaded = match &blob {
        None => None,
        Some(b) => Some(
            warden_policy::Policy::load(b)
                .map_err(|err| ToolError::Load { path: policy.unwrap_or(input).to_path_buf(), err })?,
        ),
    };
    let d = match decode(&bytes) {
        Ok(d) => d,
        Err(e) => {
            match fmt {
                Format::Text => eprintln!("error: {}: {e}", input.display()),
                Format::Json => println!("{}", json!({"error": e})),
            }
            return Ok(Outcome::PolicyFailed);
        }
    };
    match fmt {
        Format::Text => {
            for r in &d.records {
                println!("{}", r.avc(loaded.as_ref()));
            }
            if let Some((dropped, next)) = d.header {
                println!("# {} record(s); {dropped} dropped by the ring before they were read; next sequence number {next}", d.records.len());
            }
        }
        Format::Json => {
            let recs: Vec<Value> = d
                .records
                .iter()
                .map(|r| serde_json::from_str(&r.json(loaded.as_ref()).to_string()).unwrap_or(Value::Null))
                .collect();
            let mut out = json!({"records": recs});
            if let Some((dropped, next)) = d.header {
                out["dropped"] = json!(dropped);
                out["next_seq"] = json!(next);
            }
            crate::print_json(&out);
        }
    }
    Ok(Outcome::Ok)
}
