//! digits8: the UCI 8x8 handwritten digits (1,797 images, 64 pixels 0..16 then the label),
//! as shipped in sklearn's digits.csv.gz. Embedded in the binary; see data/README.md.

use super::catalog::DIGITS8_CSV_GZ;
use super::ImageSet;
use std::io::Read;

pub fn load() -> ImageSet {
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS8_CSV_GZ).read_to_string(&mut text).expect("embedded digits8 is valid gzip");
    let mut pixels = Vec::with_capacity(1797 * 64);
    let mut labels = Vec::with_capacity(1797);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let vals: Vec<f32> =
            line.split(',').map(|v| v.trim().parse::<f32>().expect("digits8 csv is numeric")).collect();
        assert_eq!(vals.len(), 65, "digits8 rows have 64 pixels and a label");
        pixels.extend(vals[..64].iter().map(|v| v / 16.0));
        labels.push(vals[64] as u8);
    }
    ImageSet { pixels, labels, h: 8, w: 8, classes: 10 }
}
