"""What firmware does with memory at power-on, before any loader runs: the POST stage.

`bootforge.post.seabios` models SeaBIOS 1.16's option-ROM scan, PMM, UMB and boot list on
QEMU's pc machine; `bootforge.post.seabios_log` reads what SeaBIOS prints about it (port
0x402), so a real boot can be compared with the model field by field.
"""
