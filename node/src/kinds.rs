//! Every kind of document this node keeps, for the document store to merge what arrives from
//! its peers ([`crate::documents::merge_remote`]): the one place that lists them.

use crate::documents::Schema;

pub static ALL: [&dyn Schema; 5] = [&crate::lessons::LESSONS, &crate::catalog::COLLECTIONS, &crate::catalog::ANNOUNCEMENTS, &crate::catalog::COMPETITIONS, &crate::trust::REVOCATIONS];
