"""emofuse.models"""
