//! The check that matters most: billing read back customer by customer and compared
//! with the CRM — duplicates, missing contacts, differing values, strays.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// What billing holds, checked customer by customer against the CRM.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TargetCheck {
    pub customers: usize,
    /// Contacts with exactly one customer carrying their id and their values.
    pub synced: usize,
    /// Customers beyond the first, per CRM id and per email.
    pub duplicates_by_crm_id: usize,
    pub duplicates_by_email: usize,
    /// Contacts (other than the refused ones) without a customer.
    pub missing: Vec<String>,
    /// Contacts whose customer holds other values than the contact.
    pub different: Vec<String>,
    /// Customers that belong to no contact.
    pub strays: usize,
    /// Customers that existed before the sync and now carry their contact's id.
    pub linked: usize,
}

impl TargetCheck {
    /// Compares every customer with the contacts: `refused` contacts are expected to
    /// have no customer, the `existing` customers to be linked to a contact.
    pub fn of(
        contacts: &[Value],
        customers: &[Value],
        refused: &HashSet<String>,
        existing: &HashSet<String>,
    ) -> TargetCheck {
        let by_crm_id = group(customers, "crm_id");
        let mut check = TargetCheck {
            customers: customers.len(),
            duplicates_by_crm_id: extra(&by_crm_id),
            duplicates_by_email: extra(&group(customers, "email")),
            ..TargetCheck::default()
        };
        let mut known = HashSet::new();
        for contact in contacts {
            let id = text(contact, "id");
            known.insert(id.clone());
            match by_crm_id.get(&id).and_then(|found| found.first()) {
                None if refused.contains(&id) => {}
                None => check.missing.push(id),
                Some(customer) if mirrors(contact, customer) => check.synced += 1,
                Some(_) => check.different.push(id),
            }
        }
        check.strays = customers
            .iter()
            .filter(|c| !known.contains(&text(c, "crm_id")))
            .count();
        check.linked = customers
            .iter()
            .filter(|c| existing.contains(&text(c, "id")) && known.contains(&text(c, "crm_id")))
            .count();
        check
    }

    pub fn duplicates(&self) -> usize {
        self.duplicates_by_crm_id + self.duplicates_by_email
    }
}

/// The customers sharing each value of `field` (customers without it left out).
fn group<'a>(customers: &'a [Value], field: &str) -> HashMap<String, Vec<&'a Value>> {
    let mut groups: HashMap<String, Vec<&Value>> = HashMap::new();
    for customer in customers {
        let value = text(customer, field);
        if !value.is_empty() {
            groups.entry(value).or_default().push(customer);
        }
    }
    groups
}

fn extra(groups: &HashMap<String, Vec<&Value>>) -> usize {
    groups.values().map(|g| g.len() - 1).sum()
}

/// The customer holds what the pipeline maps from the contact.
fn mirrors(contact: &Value, customer: &Value) -> bool {
    let name = format!(
        "{} {}",
        text(contact, "first_name"),
        text(contact, "last_name")
    );
    text(customer, "email") == text(contact, "email") && text(customer, "name") == name
}

fn text(record: &Value, field: &str) -> String {
    record[field].as_str().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contact(id: &str, email: &str) -> Value {
        json!({"id": id, "email": email, "first_name": "Ada", "last_name": "Lovelace"})
    }

    fn customer(id: &str, crm_id: &str, email: &str) -> Value {
        json!({"id": id, "crm_id": crm_id, "email": email, "name": "Ada Lovelace"})
    }

    #[test]
    fn a_mirrored_target_has_no_duplicates_and_nothing_missing() {
        let contacts = [
            contact("c1", "a@x"),
            contact("c2", "b@x"),
            contact("c3", ""),
        ];
        let customers = [customer("k1", "c1", "a@x"), customer("k2", "c2", "b@x")];
        let refused = HashSet::from(["c3".to_string()]);
        let existing = HashSet::from(["k2".to_string()]);
        let check = TargetCheck::of(&contacts, &customers, &refused, &existing);
        assert_eq!(check.synced, 2);
        assert_eq!(check.linked, 1);
        assert_eq!(check.duplicates(), 0);
        assert!(check.missing.is_empty() && check.different.is_empty());
        assert_eq!(check.strays, 0);
    }

    #[test]
    fn duplicates_and_missing_contacts_are_found() {
        let contacts = [contact("c1", "a@x"), contact("c2", "b@x")];
        let customers = [
            customer("k1", "c1", "a@x"),
            customer("k2", "c1", "a@x"),
            json!({"id": "k3", "email": "a@x", "name": "Legacy"}),
        ];
        let existing = HashSet::from(["k3".to_string()]);
        let check = TargetCheck::of(&contacts, &customers, &HashSet::new(), &existing);
        assert_eq!(check.duplicates_by_crm_id, 1);
        assert_eq!(check.duplicates_by_email, 2);
        assert_eq!(check.missing, ["c2"]);
        assert_eq!(check.strays, 1);
        assert_eq!(check.linked, 0, "k3 carries no crm_id: not linked");
    }
}
