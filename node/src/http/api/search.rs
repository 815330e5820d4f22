//! Search: parsing a search request, running it, and the hits with their lessons.

use super::*;

use crate::http::{ApiError, AppState, blocking};
use crate::lessons::{self};
use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;
use youke_search::{Dim, Order};

/// A parsed search request: `q`, a filter per facet dimension (repeatable: `grade=初二&grade=初三`),
/// `order` (relevance, views, rating, newest), `page`, `per_page`, `facets` (true by default).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParams {
    pub q: String,
    pub filters: Vec<(Dim, String)>,
    pub order: Order,
    pub page: u64,
    pub per_page: u64,
    pub facets: bool,
    /// A ranking: ordered by views or rating, only lessons watched or rated (`ranked=false`
    /// lists every lesson in that order).
    pub ranked: bool,
}

impl SearchParams {
    /// Parses the query string of `/search` or `/api/v1/search`.
    pub fn parse(raw: Option<&str>) -> Result<SearchParams, ApiError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|e| ApiError::BadRequest(format!("the query string is malformed: {e}")))?;
        let mut p = SearchParams { q: String::new(), filters: Vec::new(), order: Order::Relevance, page: 1, per_page: 20, facets: true, ranked: true };
        let number = |k: &str, v: &str| v.parse::<u64>().map_err(|_| ApiError::BadRequest(format!("{k} must be a whole number, not {v:?}")));
        for (k, v) in pairs {
            match k.as_str() {
                "q" => p.q = v,
                "order" => {
                    p.order = Order::parse(&v).ok_or_else(|| ApiError::BadRequest(format!("order must be relevance, views, rating or newest, not {v:?}")))?
                }
                "page" => p.page = number("page", &v)?,
                "per_page" | "limit" => p.per_page = number("per_page", &v)?,
                "facets" => p.facets = !matches!(v.as_str(), "false" | "0" | "no"),
                "ranked" => p.ranked = !matches!(v.as_str(), "false" | "0" | "no"),
                k => match Dim::parse(k) {
                    Some(dim) if !v.trim().is_empty() => {
                        if v.chars().count() > MAX_QUERY_CHARS {
                            return Err(ApiError::BadRequest(format!("the {k} filter is longer than {MAX_QUERY_CHARS} characters")));
                        }
                        if p.filters.len() >= 32 {
                            return Err(ApiError::BadRequest("at most 32 filters".into()));
                        }
                        p.filters.push((dim, v.trim().to_string()));
                    }
                    Some(_) => {}
                    None => return Err(ApiError::BadRequest(format!("unknown search parameter {k:?}"))),
                },
            }
        }
        if p.q.chars().count() > MAX_QUERY_CHARS {
            return Err(ApiError::BadRequest(format!("the query is longer than {MAX_QUERY_CHARS} characters")));
        }
        if p.page == 0 || p.per_page == 0 || p.per_page > 100 {
            return Err(ApiError::BadRequest("page starts at 1 and per_page is 1 to 100".into()));
        }
        Ok(p)
    }

    /// How many hits come before this page (saturating: a page past every hit is empty).
    pub fn offset(&self) -> u64 {
        (self.page - 1).saturating_mul(self.per_page)
    }

    /// This search's query string with one filter toggled (`None`: as it is), from page 1.
    pub fn href(&self, toggle: Option<(Dim, &str)>, order: Order, page: u64) -> String {
        let page_text = page.to_string();
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(self.filters.len() + 4);
        if !self.q.is_empty() {
            pairs.push(("q", &self.q));
        }
        // The toggled filter is removed where it is, or added last.
        let mut toggled = false;
        for (d, v) in &self.filters {
            if !toggled && toggle.is_some_and(|(dim, value)| *d == dim && v == value) {
                toggled = true;
                continue;
            }
            pairs.push((d.as_str(), v));
        }
        if let Some((dim, value)) = toggle.filter(|_| !toggled) {
            pairs.push((dim.as_str(), value));
        }
        if order != Order::Relevance {
            pairs.push(("order", order.as_str()));
        }
        if page > 1 {
            pairs.push(("page", &page_text));
        }
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    }
}

/// A page of search hits; `L` is what each hit carries of its lesson: the whole [`LessonView`]
/// (API, cards with posters) or just its row (the search page's list).
#[derive(Debug, Serialize)]
pub struct SearchResult<L = LessonView> {
    pub query: String,
    pub order: Order,
    pub page: u64,
    pub per_page: u64,
    /// Lessons matching, in all.
    pub total: usize,
    pub items: Vec<SearchHit<L>>,
    /// Per dimension, its values and how many matching lessons have each, most first.
    pub facets: std::collections::BTreeMap<&'static str, Vec<FacetCount>>,
}

#[derive(Debug, Serialize)]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

#[derive(Debug, Serialize)]
pub struct SearchHit<L = LessonView> {
    pub score: f32,
    /// The title with the matching words in `<b>` (HTML, escaped), when the title matched.
    pub title_html: Option<String>,
    /// A passage of the description with the matching words in `<b>` (HTML, escaped).
    pub snippet_html: Option<String>,
    /// Where in the lesson the query is spoken (from its subtitles): the lesson page plays
    /// from there with `?t=<seconds>`.
    pub moments: Vec<MomentView>,
    #[serde(flatten)]
    pub lesson: L,
}

#[derive(Debug, Serialize)]
pub struct MomentView {
    pub start_secs: f64,
    pub text: String,
}

pub const MAX_QUERY_CHARS: usize = 200;

/// Runs a search and loads the matching lessons, best first.
pub async fn run_search(state: &AppState, p: SearchParams) -> Result<SearchResult, ApiError> {
    search_with(state, p, |ctx, c, ids| Ok(lessons::by_ids(c, ids)?.into_iter().map(|l| (l.id.clone(), LessonView::with_conn(ctx, c, l))).collect())).await
}

/// [`run_search`] with each hit's card only (title, names, views: no ladders, no blob checks):
/// for pages that list lessons as lines.
pub async fn search_cards(state: &AppState, p: SearchParams) -> Result<SearchResult<lessons::LessonCard>, ApiError> {
    search_with(state, p, |_, c, ids| Ok(lessons::cards_by_ids(c, ids)?.into_iter().map(|l| (l.id.clone(), l)).collect())).await
}

/// The lessons of a page of hits, by id, as each kind of result carries them.
type HitRows<L> = fn(&crate::NodeCtx, &rusqlite::Connection, &[String]) -> Result<std::collections::HashMap<String, L>, ApiError>;

async fn search_with<L: Send + 'static>(state: &AppState, p: SearchParams, rows: HitRows<L>) -> Result<SearchResult<L>, ApiError> {
    let index = std::sync::Arc::clone(&state.index);
    blocking(state, move |ctx| {
        let req = youke_search::Request {
            text: p.q.clone(),
            filters: p.filters.clone(),
            order: p.order,
            offset: usize::try_from(p.offset()).unwrap_or(usize::MAX),
            limit: p.per_page as usize,
            facets: p.facets,
            ranked: p.ranked,
        };
        let failed = |e: youke_search::SearchError| match e {
            youke_search::SearchError::TooDeep => ApiError::BadRequest(e.to_string()),
            e => ApiError::Internal(e.to_string()),
        };
        let found = match index.search(&req) {
            // Deeper than the index pages to: an empty page when it is past the last hit.
            Err(youke_search::SearchError::TooDeep) => {
                let mut counted = index.search(&youke_search::Request { offset: 0, limit: 1, ..req.clone() }).map_err(failed)?;
                if counted.total > req.offset {
                    return Err(failed(youke_search::SearchError::TooDeep));
                }
                counted.hits.clear();
                counted
            }
            other => other.map_err(failed)?,
        };
        let ids: Vec<String> = found.hits.iter().map(|h| h.id.clone()).collect();
        // One read transaction for the page's rows and their ladders.
        let items = ctx.store.read(|c| -> Result<Vec<SearchHit<L>>, ApiError> {
            let tx = c.unchecked_transaction().map_err(crate::store::StoreError::from)?;
            let mut rows = rows(ctx, &tx, &ids)?;
            // In the index's order; a lesson deleted since the last commit is left out.
            Ok(found
                .hits
                .into_iter()
                .filter_map(|h| {
                    let l = rows.remove(&h.id)?;
                    let moments = h.moments.iter().map(|m| MomentView { start_secs: m.start_ms as f64 / 1000.0, text: m.text.clone() }).collect();
                    Some(SearchHit { score: h.score, title_html: h.title_marks.as_ref().map(crate::http::html::marked), snippet_html: h.snippet_marks.as_ref().map(crate::http::html::marked), moments, lesson: l })
                })
                .collect())
        })?;
        let facets = found
            .facets
            .into_iter()
            .map(|(dim, values)| (dim.as_str(), values.into_iter().map(|(value, count)| FacetCount { value, count }).collect()))
            .collect();
        Ok(SearchResult { query: p.q, order: p.order, page: p.page, per_page: p.per_page, total: found.total, items, facets })
    })
    .await
}

pub async fn search(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Json<SearchResult>, ApiError> {
    let params = SearchParams::parse(raw.as_deref())?;
    Ok(Json(run_search(&state, params).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_links_toggle_one_filter_and_parse_back() {
        let p = SearchParams::parse(Some("q=%E5%8B%BE%E8%82%A1&grade=%E5%88%9D%E4%BA%8C&subject=%E6%95%B0%E5%AD%A6&order=views&page=3")).expect("parses");
        // As it is, from page 1.
        assert_eq!(SearchParams::parse(Some(&p.href(None, p.order, 1))).expect("parses"), SearchParams { page: 1, ..p.clone() });
        // A chosen filter is removed, another added last; Chinese values survive.
        let without = SearchParams::parse(Some(&p.href(Some((Dim::Grade, "初二")), p.order, 1))).expect("parses");
        assert_eq!(without.filters, vec![(Dim::Subject, "数学".to_string())]);
        let with = SearchParams::parse(Some(&p.href(Some((Dim::School, "一中 & 二中")), Order::Relevance, 2))).expect("parses");
        assert_eq!(with.filters.last(), Some(&(Dim::School, "一中 & 二中".to_string())));
        assert_eq!((with.order, with.page, with.q.as_str()), (Order::Relevance, 2, "勾股"));
        assert_eq!(SearchParams::parse(None).expect("parses").href(None, Order::Relevance, 1), "");
    }
}
