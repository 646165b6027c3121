//! Generates the CAN codecs from `can/maslow.dbc`, the single source of
//! truth for every frame between plant and controller, so code and file
//! cannot drift:
//! - `maslow_dbc.rs`: typed message structs (encode/decode, ranges) by
//!   `dbc-codegen`;
//! - `maslow_dbc_table.rs`: one [`MessageSpec`] per message (id, sender,
//!   cycle time, receive deadline, E2E data id) from the DBC's attributes,
//!   with one `SignalSpec` per signal (layout, scaling, range);
//! - `maslow_dbc_oracle.rs` (for the tests only): every signal's raw
//!   value read and written through the `dbc-codegen` structs, by message
//!   and signal name, so the table's generic codec is checked against them.
//!
//! A malformed DBC or a message that breaks the contract's rules (E2E
//! signals without a data id, a cyclic message without a deadline) fails
//! the build with a message naming the message.

use std::fmt::Write as _;
use std::path::PathBuf;

use can_dbc::{AttributeValue, ByteOrder, Dbc, Message, MessageId, NumericValue, ValueType};
use heck::{ToPascalCase, ToSnakeCase};

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
    std::fs::write(out_dir.join("maslow_dbc_oracle.rs"), oracle(&dbc))
        .map_err(|e| format!("cannot write the test oracle: {e}"))?;
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
        let signals = signal_table(m)?;
        let _ = writeln!(
            s,
            "    MessageSpec {{ name: {:?}, id: {id:#05x}, dlc: {}, sender: {sender}, cycle_ms: {cycle}, deadline_ms: {deadline}, e2e_data_id: {e2e}, signals: &[\n{signals}    ] }},",
            m.name, m.size
        );
    }
    let _ = writeln!(s, "];");
    Ok(s)
}

fn numeric(v: &NumericValue) -> f64 {
    match *v {
        NumericValue::Uint(u) => u as f64,
        NumericValue::Int(i) => i as f64,
        NumericValue::Double(d) => d,
    }
}

/// The `SignalSpec` entries of one message, in DBC order. The raw range an
/// encoder clamps to is the bit field's range within the DBC's min..max.
fn signal_table(m: &Message) -> Result<String, String> {
    let mut s = String::new();
    for g in &m.signals {
        let what = format!("message {}, signal {}", m.name, g.name);
        if g.size == 0 || g.size > 64 {
            return Err(format!("{what}: size {} bits, must be 1..=64", g.size));
        }
        let last_bit = match g.byte_order {
            ByteOrder::LittleEndian => g.start_bit + g.size - 1,
            // Motorola: the start bit is the most significant one; the
            // field runs towards higher bytes.
            ByteOrder::BigEndian => {
                let msb_byte = g.start_bit / 8;
                let bits_in_first = g.start_bit % 8 + 1;
                let rest = g.size.saturating_sub(bits_in_first);
                (msb_byte + rest.div_ceil(8)) * 8 + 7
            }
        };
        if last_bit >= m.size * 8 {
            return Err(format!(
                "{what}: bits {}..{} do not fit the {} data bytes",
                g.start_bit, last_bit, m.size
            ));
        }
        if !(g.factor.is_finite() && g.factor != 0.0 && g.offset.is_finite()) {
            return Err(format!(
                "{what}: factor {} and offset {} must be finite, the factor non-zero",
                g.factor, g.offset
            ));
        }
        let signed = g.value_type == ValueType::Signed;
        let (bits_min, bits_max): (i128, i128) = if signed {
            (-(1i128 << (g.size - 1)), (1i128 << (g.size - 1)) - 1)
        } else {
            (0, (1i128 << g.size) - 1)
        };
        let (min, max) = (numeric(&g.min), numeric(&g.max));
        let to_raw = |v: f64| ((v - g.offset) / g.factor).round();
        let (a, b) = (to_raw(min), to_raw(max));
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        // A DBC range of [0|0] means "none given": the bit field's range.
        let (raw_min, raw_max) = if min == 0.0 && max == 0.0 {
            (bits_min, bits_max)
        } else {
            ((lo as i128).max(bits_min), (hi as i128).min(bits_max))
        };
        if raw_min > raw_max {
            return Err(format!(
                "{what}: the range [{min}|{max}] holds no raw value of the {}-bit field",
                g.size
            ));
        }
        let order = match g.byte_order {
            ByteOrder::LittleEndian => "ByteOrder::LittleEndian",
            ByteOrder::BigEndian => "ByteOrder::BigEndian",
        };
        let _ = writeln!(
            s,
            "        SignalSpec {{ name: {:?}, start_bit: {}, size: {}, byte_order: {order}, signed: {signed}, factor: {:?}, offset: {:?}, min: {:?}, max: {:?}, raw_min: {raw_min}, raw_max: {raw_max} }},",
            g.name, g.start_bit, g.size, g.factor, g.offset, min, max
        );
    }
    Ok(s)
}

/// Test oracle: `generated_raw(message, signal, payload)` reads a signal's
/// raw value with the `dbc-codegen` struct's `*_raw_val` getter,
/// `generated_with_raw(message, signal, raw)` writes it into a zeroed
/// payload with its setter (`None`: no such message or signal).
fn oracle(dbc: &Dbc) -> String {
    let mut get = String::new();
    let mut set = String::new();
    for m in &dbc.messages {
        let ty = m.name.to_pascal_case();
        for g in &m.signals {
            let f = g.name.to_snake_case();
            let _ = writeln!(
                get,
                "        ({:?}, {:?}) => Some(i64::from({ty}::try_from(payload).ok()?.{f}_raw_val())),",
                m.name, g.name
            );
            let _ = writeln!(
                set,
                "        ({:?}, {:?}) => {{ let mut m = {ty}::try_from(&[0u8; {}][..]).ok()?; m.set_{f}_raw_val(raw.try_into().ok()?); Some(m.raw().to_vec()) }}",
                m.name, g.name, m.size
            );
        }
    }
    format!(
        "pub fn generated_raw(message: &str, signal: &str, payload: &[u8]) -> Option<i64> {{\n    match (message, signal) {{\n{get}        _ => None,\n    }}\n}}\n\npub fn generated_with_raw(message: &str, signal: &str, raw: i64) -> Option<std::vec::Vec<u8>> {{\n    match (message, signal) {{\n{set}        _ => None,\n    }}\n}}\n"
    )
}
