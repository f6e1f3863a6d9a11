//! The transparency log as C2SP tlog-tiles (https://c2sp.org/tlog-tiles), which monitors and
//! witnesses read: `tile/{L}/{N}` holds the 256 hashes at height 8·L from position 256·N,
//! `tile/entries/{N}` the 256 entries from 256·N (each a big-endian u16 length, then the body);
//! `.p/{W}` asks for a partial tile of the first W. Served from the hashes stored as entries are
//! appended; the checkpoint is `/api/v1/log/checkpoint`. A full tile never changes.

use actix_web::{HttpResponse, get, web};

use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::error_code as code;
use crate::state::AppState;

/// Hashes (or entries) per full tile.
const TILE_WIDTH: u64 = 256;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // The entries route first: `entries` is not a level.
    cfg.service(entry_bundle).service(hash_tile);
}

/// Where a tile sits: its index, and its width (256 for a full tile).
#[derive(Debug, PartialEq, Eq)]
struct TileIndex {
    index: u64,
    width: u64,
}

/// Parses `x001/x234/067` or `x001/x234/067.p/8`: three-digit elements, all but the last
/// prefixed `x`, in the one canonical form (anything else names no tile).
fn parse_index(path: &str) -> Option<TileIndex> {
    let (path, width) = match path.rsplit_once(".p/") {
        Some((path, given)) => {
            let width: u64 = given.parse().ok()?;
            if !(1..TILE_WIDTH).contains(&width) || width.to_string() != given {
                return None;
            }
            (path, width)
        }
        None => (path, TILE_WIDTH),
    };
    let elements: Vec<&str> = path.split('/').collect();
    let mut index: u64 = 0;
    for (i, element) in elements.iter().enumerate() {
        let digits = if i + 1 < elements.len() {
            element.strip_prefix('x')?
        } else {
            element
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        index = index.checked_mul(1000)?.checked_add(digits.parse().ok()?)?;
    }
    (encode_index(index) == path).then_some(TileIndex { index, width })
}

/// The canonical path of a tile index.
fn encode_index(mut index: u64) -> String {
    let mut elements = vec![format!("{:03}", index % 1000)];
    index /= 1000;
    while index > 0 {
        elements.push(format!("x{:03}", index % 1000));
        index /= 1000;
    }
    elements.reverse();
    elements.join("/")
}

fn no_tile(what: &str) -> ApiError {
    ApiError::not_found(code::TILE_NOT_FOUND, format!("the log has no tile {what}"))
}

/// The range of positions a tile covers, if the log's `count` positions at its height hold it
/// whole. A partial tile stays available after its full tile exists: it is a prefix of it.
fn covered(tile: &TileIndex, count: u64) -> Option<(i64, i64)> {
    let start = tile.index.checked_mul(TILE_WIDTH)?;
    let end = start.checked_add(tile.width)?;
    if end > count {
        return None;
    }
    Some((i64::try_from(start).ok()?, i64::try_from(end).ok()?))
}

fn tile_response(bytes: Vec<u8>, full: bool) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((
            "Cache-Control",
            if full {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            },
        ))
        .body(bytes)
}

/// A tile of hashes.
#[utoipa::path(get, path = "/api/v1/log/tile/{level}/{index}",
    params(("level" = u8, Path, description = "Tile level L: hashes at height 8·L"),
           ("index" = String, Path, description = "Tile index as C2SP writes it (`x001/234`), optionally `.p/W`")),
    responses((status = 200, description = "the tile's hashes, 32 bytes each", content_type = "application/octet-stream"),
              super::openapi_responses::PublicErrors, super::openapi_responses::NotFound))]
#[get("/api/v1/log/tile/{level}/{index:.*}")]
pub async fn hash_tile(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (level, index) = path.into_inner();
    let what = format!("{level}/{index}");
    let level: u32 = level
        .parse()
        .ok()
        .filter(|l: &u32| l.to_string() == level && *l <= 7)
        .ok_or_else(|| no_tile(&what))?;
    let tile = parse_index(&index).ok_or_else(|| no_tile(&what))?;
    let mut conn = state.db.acquire().await?;
    let size = db::tlog::size(&mut conn).await? as u64;
    let height = 8 * level;
    let (start, end) = covered(&tile, size >> height).ok_or_else(|| no_tile(&what))?;
    let hashes = db::tlog::hashes_at(&mut conn, height as i16, start, end).await?;
    if hashes.len() as u64 != tile.width {
        return Err(ApiError::internal(anyhow::anyhow!(
            "tile {what}: {} stored hashes for {} positions",
            hashes.len(),
            tile.width
        )));
    }
    Ok(tile_response(hashes.concat(), tile.width == TILE_WIDTH))
}

/// A bundle of entries.
#[utoipa::path(get, path = "/api/v1/log/tile/entries/{index}",
    params(("index" = String, Path, description = "Bundle index as C2SP writes it (`x001/234`), optionally `.p/W`")),
    responses((status = 200, description = "each entry as a big-endian u16 length and its body", content_type = "application/octet-stream"),
              super::openapi_responses::PublicErrors, super::openapi_responses::NotFound))]
#[get("/api/v1/log/tile/entries/{index:.*}")]
pub async fn entry_bundle(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let index = path.into_inner();
    let what = format!("entries/{index}");
    let tile = parse_index(&index).ok_or_else(|| no_tile(&what))?;
    let mut conn = state.db.acquire().await?;
    let size = db::tlog::size(&mut conn).await? as u64;
    let (start, end) = covered(&tile, size).ok_or_else(|| no_tile(&what))?;
    let bodies = db::tlog::bodies(&mut conn, start, end).await?;
    let mut bundle = Vec::new();
    for body in &bodies {
        let len = u16::try_from(body.len())
            .map_err(|_| ApiError::internal(anyhow::anyhow!("a log entry is over 65,535 bytes")))?;
        bundle.extend_from_slice(&len.to_be_bytes());
        bundle.extend_from_slice(body);
    }
    Ok(tile_response(bundle, tile.width == TILE_WIDTH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_indexes_in_their_one_canonical_form() {
        let at = |index, width| Some(TileIndex { index, width });
        assert_eq!(parse_index("000"), at(0, 256));
        assert_eq!(parse_index("067"), at(67, 256));
        assert_eq!(parse_index("x001/x234/067"), at(1_234_067, 256));
        assert_eq!(parse_index("x001/000.p/8"), at(1000, 8));
        for bad in [
            "67",
            "0067",
            "x000/067",
            "001/067",
            "x001",
            "067.p/0",
            "067.p/256",
            "067.p/08",
            "067.p/",
            "067.p/+8",
            "abc",
            "",
            "x001/x234/067/",
        ] {
            assert_eq!(parse_index(bad), None, "{bad}");
        }
        assert_eq!(encode_index(1_234_067), "x001/x234/067");
        assert_eq!(encode_index(5), "005");
    }

    #[test]
    fn a_tile_exists_once_the_log_holds_all_it_covers() {
        let full = TileIndex {
            index: 1,
            width: 256,
        };
        let partial = TileIndex {
            index: 1,
            width: 44,
        };
        assert_eq!(covered(&full, 300), None);
        assert_eq!(covered(&partial, 300), Some((256, 300)));
        assert_eq!(covered(&partial, 299), None, "not that many yet");
        assert_eq!(covered(&full, 512), Some((256, 512)));
        assert_eq!(
            covered(&partial, 512),
            Some((256, 300)),
            "a prefix of the full tile"
        );
        let far = TileIndex {
            index: u64::MAX / 2,
            width: 256,
        };
        assert_eq!(covered(&far, u64::MAX), None, "no overflow");
    }
}
