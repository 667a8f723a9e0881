//! `silt topic create|list|describe|delete`.

use std::io::Write;

use crate::error::Result;
use crate::wire::{CreateTopic, TopicDescription};
use crate::{Api, Connection, Output, emit, emit_json, format};

/// `silt topic ...`.
#[derive(Debug, clap::Args)]
pub struct TopicArgs {
    /// Where the agent is.
    #[command(flatten)]
    pub conn: Connection,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub action: TopicAction,
}

/// The topic subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TopicAction {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions (server default: 1).
        #[arg(long, short = 'p')]
        partitions: Option<u32>,
        /// Keep records for this many milliseconds (-1: forever).
        #[arg(long, allow_negative_numbers = true)]
        retention_ms: Option<i64>,
        /// Keep about this many bytes per partition (-1: no limit).
        #[arg(long, allow_negative_numbers = true)]
        retention_bytes: Option<i64>,
    },
    /// List all topics.
    List,
    /// Show a topic's settings and partition bounds.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete a topic and all its records.
    Delete {
        /// Topic name.
        name: String,
    },
}

/// Runs a topic subcommand, printing to `out`.
pub async fn topic(api: &Api, args: TopicArgs, out: &mut impl Write) -> Result<()> {
    match args.action {
        TopicAction::Create {
            name,
            partitions,
            retention_ms,
            retention_bytes,
        } => {
            let mut config = serde_json::Map::new();
            if let Some(ms) = retention_ms {
                config.insert("retention_ms".into(), ms.into());
            }
            if let Some(b) = retention_bytes {
                config.insert("retention_bytes".into(), b.into());
            }
            let created = api
                .create_topic(&CreateTopic {
                    name,
                    partitions,
                    config,
                })
                .await?;
            match args.output {
                Output::Json => emit_json(out, &created),
                Output::Table => emit(
                    out,
                    &format!(
                        "created topic {} with {} partition{} (id {}, config {})\n",
                        created.name,
                        created.partitions.len(),
                        if created.partitions.len() == 1 { "" } else { "s" },
                        created.id.as_deref().unwrap_or("-"),
                        format::config(&created.config),
                    ),
                ),
            }
        }
        TopicAction::List => {
            let list = api.list_topics().await?;
            match args.output {
                Output::Json => emit_json(out, &list),
                Output::Table => {
                    let rows: Vec<Vec<String>> = list
                        .topics
                        .iter()
                        .map(|t| vec![t.name.clone(), t.partitions.to_string()])
                        .collect();
                    emit(out, &format::table(&["NAME", "PARTITIONS"], &rows))
                }
            }
        }
        TopicAction::Describe { name } => {
            let d = api.describe_topic(&name).await?;
            match args.output {
                Output::Json => emit_json(out, &d),
                Output::Table => emit(out, &describe_table(&d)),
            }
        }
        TopicAction::Delete { name } => {
            api.delete_topic(&name).await?;
            match args.output {
                Output::Json => emit_json(out, &serde_json::json!({"deleted": name})),
                Output::Table => emit(out, &format!("deleted topic {name}\n")),
            }
        }
    }
}

/// The human-readable description of a topic.
pub fn describe_table(d: &TopicDescription) -> String {
    let mut text = format!(
        "name:    {}\nid:      {}\nconfig:  {}\n",
        d.name,
        d.id.as_deref().unwrap_or("-"),
        format::config(&d.config)
    );
    let rows: Vec<Vec<String>> = d
        .partitions
        .iter()
        .map(|p| {
            vec![
                p.partition.to_string(),
                p.log_start_offset.to_string(),
                p.high_watermark.to_string(),
                p.high_watermark.saturating_sub(p.log_start_offset).to_string(),
            ]
        })
        .collect();
    text.push_str(&format::table(
        &["PARTITION", "LOG_START", "HIGH_WATERMARK", "RECORDS"],
        &rows,
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientCommand;
    use crate::tests::parse;
    use crate::wire::PartitionDescription;

    #[test]
    fn create_flags_parse() {
        let cmd = parse(&[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--retention-ms",
            "-1",
            "--retention-bytes",
            "1000",
            "--output",
            "json",
        ])
        .expect("parse");
        let ClientCommand::Topic(args) = cmd else {
            panic!("not a topic command")
        };
        assert_eq!(args.output, Output::Json);
        match args.action {
            TopicAction::Create {
                name,
                partitions,
                retention_ms,
                retention_bytes,
            } => {
                assert_eq!(name, "orders");
                assert_eq!(partitions, Some(3));
                assert_eq!(retention_ms, Some(-1));
                assert_eq!(retention_bytes, Some(1000));
            }
            other => panic!("wrong action {other:?}"),
        }
        assert!(parse(&["topic", "create"]).is_err());
        assert!(parse(&["topic", "create", "x", "--partitions", "-2"]).is_err());
        assert!(parse(&["topic", "list", "--output", "yaml"]).is_err());
    }

    #[test]
    fn describe_renders_a_table() {
        let d = TopicDescription {
            name: "t".into(),
            id: Some("abc".into()),
            config: serde_json::Map::new(),
            partitions: vec![
                PartitionDescription {
                    partition: 0,
                    log_start_offset: 2,
                    high_watermark: 10,
                },
                PartitionDescription {
                    partition: 1,
                    log_start_offset: 0,
                    high_watermark: 0,
                },
            ],
        };
        assert_eq!(
            describe_table(&d),
            "name:    t\nid:      abc\nconfig:  (defaults)\n\
             PARTITION  LOG_START  HIGH_WATERMARK  RECORDS\n\
             0          2          10              8\n\
             1          0          0               0\n"
        );
    }
}
