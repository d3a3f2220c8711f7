//! Checks of requests: listings, their pagination, and writes.

use super::{join, Checker, Scope};
use crate::config::diagnostic::list;
use crate::config::request::{PaginateConfig, PaginationStyle, ReadConfig, WriteRequestConfig};
use crate::config::yaml_tree::Anchor;

/// Pagination settings every style understands.
const COMMON_PAGINATION_KEYS: &[&str] = &[
    "size_param",
    "size",
    "has_more",
    "total_records",
    "total_pages",
    "full_pages",
    "max_pages",
];

/// The settings only some styles understand, and which styles.
fn style_keys(style: PaginationStyle) -> &'static [&'static str] {
    match style {
        PaginationStyle::Cursor => &["param", "cursor", "cursor_header"],
        PaginationStyle::Offset | PaginationStyle::Page => &["param", "start"],
        PaginationStyle::LinkHeader => &[],
        PaginationStyle::NextUrl => &["next"],
    }
}

impl Checker<'_> {
    /// Checks a listing request; `scope` is what its templates may use.
    pub(super) fn read(&mut self, base: &[String], read: &ReadConfig, scope: &Scope) {
        self.template(&join(base, &["path"]), &read.path, scope);
        for (name, value) in &read.params {
            self.template(&join(base, &["params", name]), value, scope);
        }
        self.headers(&join(base, &["headers"]), &read.headers, scope);
        self.json_path(&join(base, &["records"]), &read.records);
        if let Some(paginate) = &read.paginate {
            self.paginate(&join(base, &["paginate"]), paginate);
        }
    }

    fn paginate(&mut self, base: &[String], p: &PaginateConfig) {
        let style = p.style;
        let set: Vec<(&str, bool)> = vec![
            ("param", p.param.is_some()),
            ("cursor", p.cursor.is_some()),
            ("cursor_header", p.cursor_header.is_some()),
            ("next", p.next.is_some()),
            ("start", p.start.is_some()),
        ];
        let fits = style_keys(style);
        for (key, present) in &set {
            if *present && !fits.contains(key) {
                let mut usable: Vec<&str> = fits.to_vec();
                usable.extend_from_slice(COMMON_PAGINATION_KEYS);
                self.error(
                    &join(base, &[key]),
                    Anchor::Key,
                    format!("`{key}` does not apply to `style: {}`", style.as_str()),
                )
                .hint = Some(format!(
                    "{} pagination uses {}",
                    style.as_str(),
                    list(&usable)
                ));
            }
        }
        let needs = |checker: &mut Self, key: &str, why: &str| {
            checker
                .error(
                    &join(base, &["style"]),
                    Anchor::Value,
                    format!("`style: {}` needs `{key}`", style.as_str()),
                )
                .hint = Some(why.to_string());
        };
        match style {
            PaginationStyle::Cursor => {
                if p.param.is_none() {
                    needs(
                        self,
                        "param",
                        "the query parameter the cursor is sent back in",
                    );
                }
                match (&p.cursor, &p.cursor_header) {
                    (None, None) => needs(self, "cursor", "where the next cursor is: `cursor` (a path in the body) or `cursor_header`"),
                    (Some(_), Some(_)) => {
                        self.error(&join(base, &["cursor_header"]), Anchor::Key, "`cursor` and `cursor_header` exclude each other");
                    }
                    _ => {}
                }
            }
            PaginationStyle::Offset | PaginationStyle::Page => {
                if p.param.is_none() {
                    let what = if style == PaginationStyle::Offset {
                        "offset"
                    } else {
                        "page number"
                    };
                    needs(
                        self,
                        "param",
                        &format!("the query parameter that carries the {what}"),
                    );
                }
            }
            PaginationStyle::NextUrl => {
                if p.next.is_none() {
                    needs(
                        self,
                        "next",
                        "where the next page's URL is in the body, e.g. \"$.links.next\"",
                    );
                }
            }
            PaginationStyle::LinkHeader => {}
        }
        if p.size_param.is_some() && p.size.is_none() {
            self.error(
                &join(base, &["size_param"]),
                Anchor::Key,
                "`size_param` needs `size`, the page size to ask for",
            );
        }
        if p.full_pages && p.size.is_none() {
            self.error(
                &join(base, &["full_pages"]),
                Anchor::Key,
                "`full_pages` needs `size`, to tell a short page",
            );
        }
        for (key, json_path) in [
            ("cursor", &p.cursor),
            ("next", &p.next),
            ("has_more", &p.has_more),
            ("total_records", &p.total_records),
            ("total_pages", &p.total_pages),
        ] {
            if let Some(json_path) = json_path {
                self.json_path(&join(base, &[key]), json_path);
            }
        }
    }

    /// Checks a write request's templates and paths. `is_create` allows `id` /
    /// `assign_id`; whether a create needs one depends on the system (see
    /// `written_side`).
    pub(super) fn write(
        &mut self,
        base: &[String],
        write: &WriteRequestConfig,
        scope: &Scope,
        is_create: bool,
    ) {
        self.template(&join(base, &["path"]), &write.path, scope);
        self.headers(&join(base, &["headers"]), &write.headers, scope);
        if let Some(id) = &write.id {
            self.json_path(&join(base, &["id"]), id);
        }
        if let Some(assign_id) = &write.assign_id {
            self.template(&join(base, &["assign_id"]), assign_id, scope);
        }
        if is_create {
            if write.id.is_some() && write.assign_id.is_some() {
                self.error(
                    &join(base, &["assign_id"]),
                    Anchor::Key,
                    "`id` and `assign_id` exclude each other",
                );
            }
        } else {
            for (key, present) in [
                ("id", write.id.is_some()),
                ("assign_id", write.assign_id.is_some()),
            ] {
                if present {
                    self.error(
                        &join(base, &[key]),
                        Anchor::Key,
                        format!("`{key}` only applies to `create`"),
                    );
                }
            }
        }
    }
}
