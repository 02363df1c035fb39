"""DL/T 645-2007, the protocol of Chinese utility and sub-meters on RS-485: the pure frame
codec (`codec`), the profile format (`profile`), and the I/O that carries it on a serial
line or a TCP transparent gateway (`transport`)."""
