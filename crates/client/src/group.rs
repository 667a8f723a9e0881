//! `silt group commit|show`: consumer-group offsets.

use std::collections::BTreeMap;
use std::io::Write;

use crate::error::Result;
use crate::wire::{CommitRequest, GroupOffset, GroupOffsets};
use crate::{Api, Connection, Output, emit, emit_json, format};

/// `silt group ...`.
#[derive(Debug, clap::Args)]
pub struct GroupArgs {
    /// Where the agent is.
    #[command(flatten)]
    pub conn: Connection,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub action: GroupAction,
}

/// The group subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum GroupAction {
    /// Commit the next offset to consume of one partition.
    Commit {
        /// Group name.
        group: String,
        /// Topic.
        #[arg(long, short = 't')]
        topic: String,
        /// Partition.
        #[arg(long, short = 'p')]
        partition: u32,
        /// Next offset to consume.
        #[arg(long)]
        offset: u64,
        /// Group generation the commit belongs to (sent only when given;
        /// servers without generations reject it).
        #[arg(long, value_parser = clap::value_parser!(i64).range(0..=i64::from(i32::MAX)))]
        generation: Option<i64>,
        /// Allow moving the offset backwards (sent only when given;
        /// servers without it reject it).
        #[arg(long)]
        reset: bool,
    },
    /// Show a group's committed offsets, with the lag behind each high
    /// watermark.
    Show {
        /// Group name.
        group: String,
    },
}

/// The body `silt group commit` sends.
pub fn commit_request(
    topic: String,
    partition: u32,
    offset: u64,
    generation: Option<i64>,
    reset: bool,
) -> CommitRequest {
    CommitRequest {
        offsets: vec![GroupOffset {
            topic,
            partition,
            offset,
        }],
        generation,
        reset: reset.then_some(true),
    }
}

/// Runs a group subcommand, printing to `out`.
pub async fn group(api: &Api, args: GroupArgs, out: &mut impl Write) -> Result<()> {
    match args.action {
        GroupAction::Commit {
            group,
            topic,
            partition,
            offset,
            generation,
            reset,
        } => {
            let req = commit_request(topic, partition, offset, generation, reset);
            api.commit_group(&group, &req).await?;
            match args.output {
                Output::Json => emit_json(out, &serde_json::json!({"group": group, "offsets": req.offsets})),
                Output::Table => {
                    let o = req.offsets.first();
                    emit(
                        out,
                        &format!(
                            "committed group {group}: {}/{} offset {}\n",
                            o.map_or("", |o| o.topic.as_str()),
                            o.map_or(0, |o| o.partition),
                            o.map_or(0, |o| o.offset),
                        ),
                    )
                }
            }
        }
        GroupAction::Show { group } => {
            let offsets = api.group_offsets(&group).await?;
            match args.output {
                Output::Json => emit_json(out, &offsets),
                Output::Table => {
                    let mut watermarks = BTreeMap::new();
                    for o in &offsets.offsets {
                        if !watermarks.contains_key(&o.topic) {
                            // A deleted topic has no lag to show; not an error.
                            let described = api.describe_topic(&o.topic).await.ok();
                            watermarks.insert(o.topic.clone(), described);
                        }
                    }
                    let hwm = |o: &GroupOffset| {
                        watermarks
                            .get(&o.topic)
                            .and_then(|d| d.as_ref())
                            .and_then(|d| d.partition(o.partition))
                            .map(|p| p.high_watermark)
                    };
                    emit(out, &show_table(&offsets, hwm))
                }
            }
        }
    }
}

/// The human-readable table of a group's offsets; `hwm` gives each
/// partition's high watermark when known.
pub fn show_table(offsets: &GroupOffsets, hwm: impl Fn(&GroupOffset) -> Option<u64>) -> String {
    let mut text = offsets
        .generation
        .map_or_else(String::new, |g| format!("generation: {g}\n"));
    let rows: Vec<Vec<String>> = offsets
        .offsets
        .iter()
        .map(|o| {
            let high = hwm(o);
            vec![
                o.topic.clone(),
                o.partition.to_string(),
                o.offset.to_string(),
                high.map_or("-".into(), |h| h.to_string()),
                high.map_or("-".into(), |h| h.saturating_sub(o.offset).to_string()),
            ]
        })
        .collect();
    text.push_str(&format::table(
        &["TOPIC", "PARTITION", "OFFSET", "HIGH_WATERMARK", "LAG"],
        &rows,
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientCommand;
    use crate::tests::parse;

    #[test]
    fn commit_flags_parse() {
        let cmd = parse(&[
            "group",
            "commit",
            "g",
            "--topic",
            "t",
            "--partition",
            "2",
            "--offset",
            "40",
            "--generation",
            "7",
            "--reset",
        ])
        .expect("parse");
        let ClientCommand::Group(GroupArgs {
            action:
                GroupAction::Commit {
                    group,
                    topic,
                    partition,
                    offset,
                    generation,
                    reset,
                },
            ..
        }) = cmd
        else {
            panic!("not group commit")
        };
        assert_eq!(
            (group.as_str(), topic.as_str(), partition, offset, generation, reset),
            ("g", "t", 2, 40, Some(7), true)
        );
        assert!(parse(&["group", "commit", "g", "--topic", "t", "--partition", "1"]).is_err());
        assert!(parse(&["group", "show"]).is_err());
        let too_big = [
            "group",
            "commit",
            "g",
            "-t",
            "t",
            "-p",
            "0",
            "--offset",
            "1",
            "--generation",
            "2147483648",
        ];
        assert!(parse(&too_big).is_err());
    }

    #[test]
    fn commit_body_only_has_given_fields() {
        let plain = serde_json::to_value(commit_request("t".into(), 0, 1, None, false)).expect("json");
        assert_eq!(
            plain,
            serde_json::json!({"offsets": [{"topic": "t", "partition": 0, "offset": 1}]})
        );
        let full = serde_json::to_value(commit_request("t".into(), 0, 1, Some(2), true)).expect("json");
        assert_eq!(full["generation"], 2);
        assert_eq!(full["reset"], true);
    }

    #[test]
    fn show_renders_lag() {
        let mut offsets = GroupOffsets {
            generation: None,
            offsets: vec![
                GroupOffset {
                    topic: "a".into(),
                    partition: 0,
                    offset: 3,
                },
                GroupOffset {
                    topic: "gone".into(),
                    partition: 1,
                    offset: 9,
                },
            ],
        };
        let text = show_table(&offsets, |o| (o.topic == "a").then_some(10));
        assert_eq!(
            text,
            "TOPIC  PARTITION  OFFSET  HIGH_WATERMARK  LAG\n\
             a      0          3       10              7\n\
             gone   1          9       -               -\n"
        );
        offsets.generation = Some(3);
        assert!(show_table(&offsets, |_| None).starts_with("generation: 3\nTOPIC"));
    }
}
