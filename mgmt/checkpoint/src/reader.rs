//! The reading side: decrypts and authenticates an image's records with the unwrapped page key.
//! Run it on an image [`crate::verify`] accepted; it authenticates every record on its own too.

use crate::crypt::RecordCipher;
use crate::error::ReadError;
use crate::image::Image;
use crate::record::{PAGE_SIZE, PageBody, RecordKind, StateKind};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// A page as the image holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// All zero.
    Zero,
    /// Its bytes.
    Data(Box<[u8; PAGE_SIZE]>),
}

impl Page {
    /// The page's bytes.
    #[must_use]
    pub fn bytes(&self) -> Box<[u8; PAGE_SIZE]> {
        match self {
            Page::Zero => Box::new([0; PAGE_SIZE]),
            Page::Data(b) => b.clone(),
        }
    }
}

/// Decrypts one image's records.
#[derive(Debug)]
pub struct Reader<'i, 'a> {
    image: &'i Image<'a>,
    cipher: RecordCipher,
}

impl<'i, 'a> Reader<'i, 'a> {
    /// A reader of `image` with its unwrapped page key.
    #[must_use]
    pub fn new(image: &'i Image<'a>, page_key: &[u8; 32]) -> Reader<'i, 'a> {
        Reader {
            image,
            cipher: RecordCipher::new(page_key, &image.manifest.checkpoint_id),
        }
    }

    /// The image read.
    #[must_use]
    pub fn image(&self) -> &'i Image<'a> {
        self.image
    }

    fn open_page(&self, index: u64, sealed: &[u8]) -> Result<Page, ReadError> {
        let plain =
            self.cipher
                .open(RecordKind::Page, index, sealed)
                .ok_or(ReadError::Authentication {
                    kind: RecordKind::Page,
                    index,
                })?;
        let bytes: Box<[u8; PAGE_SIZE]> =
            plain
                .into_boxed_slice()
                .try_into()
                .map_err(|_| ReadError::Authentication {
                    kind: RecordKind::Page,
                    index,
                })?;
        Ok(Page::Data(bytes))
    }

    /// Page `index`: `None` when the image has no record for it (an incremental image's
    /// unchanged page).
    ///
    /// # Errors
    ///
    /// A record that does not authenticate at this index of this image, or an index outside
    /// memory.
    pub fn page(&self, index: u64) -> Result<Option<Page>, ReadError> {
        if index >= self.image.manifest.pages() {
            return Err(ReadError::OutOfRange(index));
        }
        let Some(r) = self.image.page_record(index) else {
            return Ok(None);
        };
        Ok(Some(match r.page() {
            Some(PageBody::Data(sealed)) => self.open_page(index, sealed)?,
            Some(PageBody::Dup(src)) => {
                let sealed = match self.image.page_record(src).and_then(|s| s.page()) {
                    Some(PageBody::Data(s)) => s,
                    _ => {
                        return Err(ReadError::Authentication {
                            kind: RecordKind::Page,
                            index,
                        });
                    }
                };
                self.open_page(src, sealed)?
            }
            _ => Page::Zero,
        }))
    }

    /// Every page the image holds, in index order.
    ///
    /// # Errors
    ///
    /// The first record that does not authenticate.
    pub fn pages(&self) -> Result<Vec<(u64, Page)>, ReadError> {
        self.image
            .records
            .iter()
            .filter(|r| r.kind == RecordKind::Page)
            .map(|r| Ok((r.index, self.page(r.index)?.unwrap_or(Page::Zero))))
            .collect()
    }

    /// The state blob of `kind`, if the image has one.
    ///
    /// # Errors
    ///
    /// A record that does not authenticate as this image's state of that kind.
    pub fn state(&self, kind: StateKind) -> Result<Option<Vec<u8>>, ReadError> {
        let Some(r) = self.image.state_record(kind) else {
            return Ok(None);
        };
        self.cipher
            .open(kind.record_kind(), 0, r.body)
            .map(Some)
            .ok_or(ReadError::Authentication {
                kind: kind.record_kind(),
                index: 0,
            })
    }
}
