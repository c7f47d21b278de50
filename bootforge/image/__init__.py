"""Bootable images (issue 12): hybrid ISO 9660 and GPT disk images with GRUB, Syslinux or Limine.

build.py turns an [image] recipe into an image; iso.py and fat.py write and
read the file systems; inspect.py and load.py read any image (ours or not).
"""
