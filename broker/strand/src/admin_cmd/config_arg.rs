//! Parsing of `--config KEY=VALUE` and `--delete-config KEY`, checked before any call is made.

use std::collections::HashMap;

/// One `KEY=VALUE` topic setting from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSetting {
    /// The config key, such as `retention.ms`.
    pub key: String,
    /// The value; it may itself contain `=`.
    pub value: String,
}

/// Parses `KEY=VALUE`, splitting at the first `=` so values may contain `=`.
pub fn parse_setting(text: &str) -> Result<ConfigSetting, String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!("expected KEY=VALUE, got `{text}`"));
    };
    let key = parse_key(key)?;
    if value.is_empty() {
        // An empty value is more likely a shell quoting slip than an intent; removing a
        // setting has its own flag.
        return Err(format!(
            "config `{key}` has an empty value; to remove a setting use --delete-config {key}"
        ));
    }
    Ok(ConfigSetting {
        key,
        value: value.to_owned(),
    })
}

/// Parses a bare config key, as `--delete-config` takes it.
pub fn parse_key(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("config key is empty".to_owned());
    }
    if text.contains('=') {
        return Err(format!("expected a config key without `=`, got `{text}`"));
    }
    if text.chars().any(char::is_whitespace) {
        return Err(format!("config key `{text}` contains whitespace"));
    }
    Ok(text.to_owned())
}

/// The settings as the map the API takes; a key given twice is an error rather than a silent
/// last-one-wins.
pub fn settings_map(settings: Vec<ConfigSetting>) -> anyhow::Result<HashMap<String, String>> {
    let mut map = HashMap::with_capacity(settings.len());
    for setting in settings {
        if map.contains_key(&setting.key) {
            anyhow::bail!("config key `{}` is given more than once", setting.key);
        }
        map.insert(setting.key, setting.value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(key: &str, value: &str) -> ConfigSetting {
        ConfigSetting {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn key_value_splits_at_the_first_equals_sign() {
        assert_eq!(
            parse_setting("retention.ms=1000"),
            Ok(setting("retention.ms", "1000"))
        );
        assert_eq!(parse_setting("a=b=c"), Ok(setting("a", "b=c")));
    }

    #[test]
    fn malformed_key_values_are_rejected_with_the_reason() {
        assert_eq!(
            parse_setting("retention.ms"),
            Err("expected KEY=VALUE, got `retention.ms`".to_owned())
        );
        assert_eq!(parse_setting("=1"), Err("config key is empty".to_owned()));
        assert_eq!(
            parse_setting("retention ms=1"),
            Err("config key `retention ms` contains whitespace".to_owned())
        );
        let empty_value = parse_setting("retention.ms=").unwrap_err();
        assert!(
            empty_value.contains("--delete-config retention.ms"),
            "{empty_value}"
        );
    }

    #[test]
    fn bare_keys_must_not_carry_a_value() {
        assert_eq!(parse_key("cleanup.policy"), Ok("cleanup.policy".to_owned()));
        assert!(parse_key("cleanup.policy=compact").is_err());
        assert!(parse_key("").is_err());
    }

    #[test]
    fn a_key_given_twice_is_an_error() {
        let error = settings_map(vec![setting("a", "1"), setting("a", "2")]).unwrap_err();
        assert_eq!(error.to_string(), "config key `a` is given more than once");
        let map = settings_map(vec![setting("a", "1"), setting("b", "2")]).unwrap();
        assert_eq!(map.len(), 2);
    }
}
