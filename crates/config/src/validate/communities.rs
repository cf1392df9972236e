//! Community aliases, unique across every Community resource.

use super::report_for;
use crate::community::{Community, CommunityError};
use crate::problem::Problem;
use crate::resources::Resources;
use std::collections::BTreeMap;

const KIND: &str = "Community";

pub fn validate(res: &Resources, out: &mut Vec<Problem>) -> BTreeMap<String, Community> {
    let mut aliases = BTreeMap::new();
    for object in &res.communities {
        let mut report = report_for(KIND, object, out);
        for (i, alias) in object.spec.communities.iter().enumerate() {
            let field = format!("spec.communities[{i}]");
            if alias.name.is_empty() {
                report.error(
                    &format!("{field}.name"),
                    "missing alias name",
                    "give the alias a name",
                );
                continue;
            }
            let community = match alias.value.parse::<Community>() {
                Ok(c) => c,
                Err(CommunityError::Invalid(message)) => {
                    report.error(
                        &format!("{field}.value"),
                        message,
                        "write AA:NN or large:GLOBAL:LOCAL1:LOCAL2",
                    );
                    continue;
                }
                Err(CommunityError::NotACommunity) => {
                    report.error(
                        &format!("{field}.value"),
                        format!("invalid community format {:?}", alias.value),
                        "write AA:NN or large:GLOBAL:LOCAL1:LOCAL2",
                    );
                    continue;
                }
            };
            if aliases.insert(alias.name.clone(), community).is_some() {
                report.error(
                    &format!("{field}.name"),
                    format!("duplicate definition of community {:?}", alias.name),
                    "alias names must be unique across all Community resources",
                );
            }
        }
    }
    aliases
}
