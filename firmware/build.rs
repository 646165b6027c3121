//! Generates the CAN codecs from `can/maslow.dbc`, the single source of
//! truth for every frame between plant and controller, so code and file
//! cannot drift:
//! - `maslow_dbc.rs`: typed message structs (encode/decode, ranges) by
//!   `dbc-codegen`;
//! - `maslow_dbc_table.rs`: one [`MessageSpec`] per message (id, sender,
//!   cycle time, receive deadline, E2E data id) from the DBC's attributes.
//!
//! A malformed DBC or a message that breaks the contract's rules (E2E
//! signals without a data id, a cyclic message without a deadline) fails
//! the build with a message naming the message.

use std::fmt::Write as _;
use std::path::PathBuf;

use can_dbc::{AttributeValue, Dbc, MessageId};

const DBC_PATH: &str = "can/maslow.dbc";

fn main() {
    println!("cargo:rerun-if-changed={DBC_PATH}");
    println!("cargo:rerun-if-changed=build.rs");
    if let Err(e) = run() {
        eprintln!("error: {DBC_PATH}: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let text = std::fs::read_to_string(DBC_PATH).map_err(|e| format!("cannot read: {e}"))?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);

    dbc_codegen::Config::builder()
        .dbc_name("maslow.dbc")
        .dbc_content(&text)
        .impl_debug(dbc_codegen::FeatureConfig::Always)
        .build()
        .write_to_file(out_dir.join("maslow_dbc.rs"))
        .map_err(|e| format!("code generation failed: {e:#}"))?;

    let dbc = Dbc::try_from(text.as_str()).map_err(|e| format!("parse error: {e:?}"))?;
    let table = message_table(&dbc)?;
    std::fs::write(out_dir.join("maslow_dbc_table.rs"), table)
        .map_err(|e| format!("cannot write table: {e}"))?;
    Ok(())
}

fn uint_attr(dbc: &Dbc, id: MessageId, name: &str) -> Result<Option<u64>, String> {
    match dbc.message_attribute(id, name) {
        None => Ok(None),
        Some(AttributeValue::Uint(v)) => Ok(Some(*v)),
        Some(AttributeValue::Int(v)) if *v >= 0 => Ok(Some(*v as u64)),
        Some(AttributeValue::Double(v)) if *v >= 0.0 && v.fract() == 0.0 => Ok(Some(*v as u64)),
        Some(other) => Err(format!(
            "attribute {name} must be a non-negative integer, found {other:?}"
        )),
    }
}

fn message_table(dbc: &Dbc) -> Result<String, String> {
    let mut s = String::new();
    let _ = writeln!(s, "/// Every message of the contract, in DBC order.");
    let _ = writeln!(s, "pub const MESSAGES: &[MessageSpec] = &[");
    for m in &dbc.messages {
        let MessageId::Standard(id) = m.id else {
            return Err(format!(
                "message {}: the contract uses 11-bit identifiers only",
                m.name
            ));
        };
        if id > 0x7FF {
            return Err(format!(
                "message {}: identifier {id:#x} is above 0x7FF",
                m.name
            ));
        }
        if m.size > 8 {
            return Err(format!(
                "message {}: {} bytes, classic CAN carries at most 8",
                m.name, m.size
            ));
        }
        let sender = match m.transmitter.as_deref() {
            Some("PLANT") => "Node::Plant",
            Some("CTRL") => "Node::Controller",
            other => {
                return Err(format!(
                    "message {}: sender must be PLANT or CTRL, found {other:?}",
                    m.name
                ))
            }
        };
        let cycle = uint_attr(dbc, m.id, "GenMsgCycleTime")?.unwrap_or(0);
        let deadline = uint_attr(dbc, m.id, "MaslowDeadlineMs")?.unwrap_or(0);
        let data_id = uint_attr(dbc, m.id, "MaslowE2eDataId")?;
        let crc_name = format!("{}_Crc", m.name);
        let counter_name = format!("{}_Counter", m.name);
        let crc = m.signals.iter().find(|s| s.name == crc_name);
        let counter = m.signals.iter().find(|s| s.name == counter_name);
        let e2e = match (crc, counter, data_id) {
            (None, None, None) => "None".to_string(),
            (Some(c), Some(k), Some(data_id)) => {
                if c.start_bit != 0 || c.size != 8 || k.start_bit != 8 || k.size != 4 {
                    return Err(format!(
                        "message {}: E2E profile 1 layout wants {crc_name} at bit 0 (8 bits) and {counter_name} at bit 8 (4 bits)",
                        m.name
                    ));
                }
                if data_id > 0xFFFF {
                    return Err(format!("message {}: MaslowE2eDataId {data_id} exceeds 16 bits", m.name));
                }
                format!("Some({data_id:#06x})")
            }
            _ => {
                return Err(format!(
                    "message {}: an E2E-protected message needs {crc_name}, {counter_name} and a MaslowE2eDataId attribute (all three or none)",
                    m.name
                ))
            }
        };
        if cycle > 0 && deadline < cycle {
            return Err(format!(
                "message {}: MaslowDeadlineMs ({deadline}) must be at least the cycle time ({cycle})",
                m.name
            ));
        }
        let _ = writeln!(
            s,
            "    MessageSpec {{ name: {:?}, id: {id:#05x}, dlc: {}, sender: {sender}, cycle_ms: {cycle}, deadline_ms: {deadline}, e2e_data_id: {e2e} }},",
            m.name, m.size
        );
    }
    let _ = writeln!(s, "];");
    Ok(s)
}
