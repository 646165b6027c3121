//! `firmware/docs/can.md` cannot drift from the DBC: its message table lists
//! exactly the messages of `firmware::wire::can::MESSAGES` (generated from
//! `firmware/can/maslow.dbc`), with the same name, sender, cycle, deadline
//! and E2E data id, and every message has a signal section.

use std::path::Path;

use firmware::wire::can::{Node, MESSAGES};

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/docs/can.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One row of the message table: `| 0x100 | PackStatus | PLANT | 100 | 350 | 0x1100 |`.
#[derive(Debug, PartialEq, Eq)]
struct Row {
    id: u16,
    name: String,
    sender: String,
    cycle: String,
    deadline: String,
    data_id: String,
}

fn message_table(doc: &str) -> Vec<Row> {
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Messages"))
        .expect("can.md has a `## Messages` section");
    section
        .lines()
        .filter(|l| l.starts_with("| 0x"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 6, "message table row with 6 cells: {l}");
            Row {
                id: u16::from_str_radix(cells[0].trim_start_matches("0x"), 16)
                    .unwrap_or_else(|e| panic!("{l}: id: {e}")),
                name: cells[1].into(),
                sender: cells[2].into(),
                cycle: cells[3].into(),
                deadline: cells[4].into(),
                data_id: cells[5].into(),
            }
        })
        .collect()
}

fn expected() -> Vec<Row> {
    MESSAGES
        .iter()
        .map(|m| Row {
            id: m.id,
            name: m.name.into(),
            sender: match m.sender {
                Node::Plant => "PLANT",
                Node::Controller => "CTRL",
            }
            .into(),
            cycle: match m.cycle_ms {
                0 => "event".into(),
                c => c.to_string(),
            },
            deadline: match m.deadline_ms {
                0 => "—".into(),
                d => d.to_string(),
            },
            data_id: m.e2e_data_id.map_or("—".into(), |d| format!("0x{d:04X}")),
        })
        .collect()
}

#[test]
fn the_doc_lists_exactly_the_contract_s_messages() {
    let doc = doc();
    let rows = message_table(&doc);
    let mut doc_ids: Vec<u16> = rows.iter().map(|r| r.id).collect();
    let mut ids: Vec<u16> = MESSAGES.iter().map(|m| m.id).collect();
    doc_ids.sort();
    ids.sort();
    assert_eq!(
        doc_ids, ids,
        "firmware/docs/can.md's message table and firmware/can/maslow.dbc list different identifiers"
    );
    assert_eq!(
        rows,
        expected(),
        "update the message table in firmware/docs/can.md to match firmware/can/maslow.dbc"
    );
    for m in MESSAGES {
        let heading = format!("### 0x{:03X} {}", m.id, m.name);
        assert!(
            doc.contains(&heading),
            "firmware/docs/can.md has no signal section `{heading}`"
        );
    }
}

#[test]
fn the_table_parser_sees_a_missing_row() {
    let doc = doc();
    let without = doc.replacen("| 0x201 | ConverterCmd |", "| 0x2FF | ConverterCmd |", 1);
    assert_ne!(message_table(&without), expected());
}

/// Every signal of the DBC has a row (`| Name |`) in the doc's signal
/// tables, so a signal added to the contract cannot go undocumented.
#[test]
fn the_doc_lists_every_signal_of_the_dbc() {
    let dbc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/can/maslow.dbc");
    let dbc = std::fs::read_to_string(&dbc_path).expect("the DBC");
    let doc = doc();
    let signals: Vec<&str> = dbc
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("SG_ "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(signals.len() > 60, "parsed {} signals", signals.len());
    let missing: Vec<&&str> = signals
        .iter()
        .filter(|s| !doc.contains(&format!("| {s} |")))
        .collect();
    assert!(
        missing.is_empty(),
        "signals missing from firmware/docs/can.md: {missing:?}"
    );
}
