"""emofuse.train"""
