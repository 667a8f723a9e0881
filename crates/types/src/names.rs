//! Validated names. Constructing one is the only way to check a name.

use std::fmt;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty names are refused.
    #[error("name is empty")]
    Empty,
    /// Names have a length limit.
    #[error("name is longer than {max} characters len={len}")]
    TooLong {
        /// The limit.
        max: usize,
        /// The given length.
        len: usize,
    },
    /// Only `[a-zA-Z0-9._-]` is allowed.
    #[error("name may only contain [a-zA-Z0-9._-] char={0:?}")]
    InvalidChar(char),
    /// `.` and `..` would be confusing in paths.
    #[error("name may not be '.' or '..'")]
    Dots,
}

fn validate(name: &str, max: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    let len = name.chars().count();
    if len > max {
        return Err(NameError::TooLong { max, len });
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(NameError::InvalidChar(c));
    }
    if name == "." || name == ".." {
        return Err(NameError::Dots);
    }
    Ok(())
}

/// A topic name following Kafka's rules: 1–249 characters of `[a-zA-Z0-9._-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TopicName(String);

impl TryFrom<String> for TopicName {
    type Error = NameError;
    fn try_from(name: String) -> Result<Self, NameError> {
        validate(&name, Self::MAX_LEN)?;
        Ok(Self(name))
    }
}

impl From<TopicName> for String {
    fn from(name: TopicName) -> String {
        name.0
    }
}

impl TopicName {
    /// Kafka's limit on topic name length.
    pub const MAX_LEN: usize = 249;

    /// Validates `name` as a topic name.
    pub fn new(name: &str) -> Result<Self, NameError> {
        validate(name, Self::MAX_LEN)?;
        Ok(Self(name.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A consumer group name: same alphabet as topics, up to 255 characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupName(String);

impl TryFrom<String> for GroupName {
    type Error = NameError;
    fn try_from(name: String) -> Result<Self, NameError> {
        validate(&name, Self::MAX_LEN)?;
        Ok(Self(name))
    }
}

impl From<GroupName> for String {
    fn from(name: GroupName) -> String {
        name.0
    }
}

impl GroupName {
    /// Limit on group name length.
    pub const MAX_LEN: usize = 255;

    /// Validates `name` as a group name.
    pub fn new(name: &str) -> Result<Self, NameError> {
        validate(name, Self::MAX_LEN)?;
        Ok(Self(name.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_topic_rules() {
        assert!(TopicName::new("orders.v1_eu-west").is_ok());
        assert_eq!(TopicName::new(""), Err(NameError::Empty));
        assert_eq!(TopicName::new("a b"), Err(NameError::InvalidChar(' ')));
        assert_eq!(TopicName::new(".."), Err(NameError::Dots));
        assert!(TopicName::new(&"x".repeat(249)).is_ok());
        assert_eq!(
            TopicName::new(&"x".repeat(250)),
            Err(NameError::TooLong { max: 249, len: 250 })
        );
        assert_eq!(TopicName::new("é"), Err(NameError::InvalidChar('é')));
    }
}
