//! Facet counting over fast fields, in the same pass as the query's top documents: for every
//! matching lesson, each dimension's dictionary ordinal is read from its column and counted; only
//! the most frequent values are turned back into text. The cost is a few column reads per match,
//! whatever the number of distinct teachers or schools.

use crate::{Dim, FACET_VALUES, FacetCounts};
use std::collections::HashMap;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::StrColumn;
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

/// The fast-field name of a dimension.
pub(crate) fn field_name(dim: Dim) -> String {
    format!("f_{}", dim.as_str())
}

pub(crate) struct FacetCounter;

pub(crate) struct SegmentCounter {
    dims: Vec<(Dim, StrColumn, Vec<u32>)>,
}

impl Collector for FacetCounter {
    type Fruit = FacetCounts;
    type Child = SegmentCounter;

    fn for_segment(&self, _: SegmentOrdinal, reader: &SegmentReader) -> tantivy::Result<SegmentCounter> {
        let mut dims = Vec::with_capacity(Dim::ALL.len());
        for dim in Dim::ALL {
            // A segment where no lesson has a value for the dimension has no column.
            if let Some(col) = reader.fast_fields().str(&field_name(dim))? {
                let n = col.num_terms();
                dims.push((dim, col, vec![0u32; n]));
            }
        }
        Ok(SegmentCounter { dims })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, segments: Vec<FacetCounts>) -> tantivy::Result<FacetCounts> {
        let mut sums: HashMap<Dim, HashMap<String, u64>> = HashMap::new();
        for seg in segments {
            for (dim, values) in seg {
                let m = sums.entry(dim).or_default();
                for (v, n) in values {
                    *m.entry(v).or_insert(0) += n;
                }
            }
        }
        Ok(Dim::ALL
            .into_iter()
            .map(|dim| {
                let mut values: Vec<(String, u64)> = sums.remove(&dim).unwrap_or_default().into_iter().collect();
                values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                values.truncate(FACET_VALUES);
                (dim, values)
            })
            .collect())
    }
}

impl SegmentCollector for SegmentCounter {
    type Fruit = FacetCounts;

    fn collect(&mut self, doc: DocId, _: Score) {
        for (_, col, counts) in &mut self.dims {
            if let Some(ord) = col.ords().first(doc)
                && let Some(c) = counts.get_mut(ord as usize)
            {
                *c += 1;
            }
        }
    }

    fn harvest(self) -> FacetCounts {
        self.dims
            .into_iter()
            .map(|(dim, col, counts)| {
                // More than FACET_VALUES per segment, so the merged top values stay right
                // when segments disagree near the cut.
                let keep = FACET_VALUES * 4;
                let mut top: Vec<(u32, usize)> = counts.iter().enumerate().filter(|(_, n)| **n > 0).map(|(ord, n)| (*n, ord)).collect();
                if top.len() > keep {
                    top.select_nth_unstable_by(keep, |a, b| b.0.cmp(&a.0));
                    top.truncate(keep);
                }
                // Ordinals to text in one pass over the dictionary (its blocks are compressed:
                // looking values up one by one would decompress a block each time).
                top.sort_unstable_by_key(|(_, ord)| *ord);
                let ords: Vec<u64> = top.iter().map(|(_, ord)| *ord as u64).collect();
                let mut texts: Vec<String> = Vec::with_capacity(ords.len());
                let ok = col.dictionary().sorted_ords_to_term_cb(&ords, |bytes| texts.push(String::from_utf8_lossy(bytes).into_owned())).unwrap_or(false);
                let values: Vec<(String, u64)> = if ok && texts.len() == top.len() {
                    texts.into_iter().zip(&top).map(|(t, (n, _))| (t, u64::from(*n))).collect()
                } else {
                    Vec::new()
                };
                (dim, values)
            })
            .collect()
    }
}
