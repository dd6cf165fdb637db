//! The network: the assigned virtio-net function as a smoltcp `Device`.

use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;
use virtio_drivers::transport::pci::bus::DeviceFunction;
use warden_abi::guest::virtio::{Net, set_dma_offset};
use warden_rt::println;

/// Largest Ethernet frame handled (no jumbo frames).
const FRAME: usize = 1514;

pub struct Nic {
    net: Net,
    rx: [u8; FRAME],
    tx: [u8; FRAME],
}

impl Nic {
    /// The domain's device 0, which must be a virtio-net function.
    pub fn open() -> Result<Nic, &'static str> {
        let dev = warden_rt::device::info(0)
            .map_err(|_| "no device assigned (the manifest's pci= key)")?;
        let offset = warden_rt::device::dma_offset(0)
            .map_err(|_| "the hypervisor refused the DMA offset")?;
        set_dma_offset(offset);
        let df = DeviceFunction {
            bus: dev.bus,
            device: dev.device,
            function: dev.function,
        };
        let net = Net::new(0, df)?;
        let m = net.mac_address();
        println!(
            "mgmt: virtio-net {:02x}:{:02x}.{} ({:04x}:{:04x}) up, MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, DMA offset {offset:#x}",
            dev.bus,
            dev.device,
            dev.function,
            dev.vendor_id,
            dev.device_id,
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5]
        );
        Ok(Nic {
            net,
            rx: [0; FRAME],
            tx: [0; FRAME],
        })
    }

    pub fn mac(&self) -> [u8; 6] {
        self.net.mac_address()
    }
}

pub struct Rx<'a>(&'a [u8]);
pub struct Tx<'a> {
    net: &'a mut Net,
    buf: &'a mut [u8; FRAME],
}

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.min(FRAME);
        let r = f(&mut self.buf[..len]);
        // A frame the device refuses is lost like on a wire; TCP retransmits.
        if self.net.send(&self.buf[..len]).is_err() {
            println!("mgmt: virtio-net refused a frame of {len} bytes");
        }
        r
    }
}

impl Device for Nic {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        let rx = &mut self.rx;
        let n = self.net.receive(|p| {
            let n = p.len().min(FRAME);
            rx[..n].copy_from_slice(&p[..n]);
            n
        })?;
        Some((
            Rx(&self.rx[..n]),
            Tx {
                net: &mut self.net,
                buf: &mut self.tx,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        Some(Tx {
            net: &mut self.net,
            buf: &mut self.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = FRAME;
        caps.max_burst_size = Some(1);
        caps
    }
}
