"""Device drivers: the bus seam, transports (sim, pcie, usb, serial), the command
protocol and the device object. Installed as akida_rt.driver."""
