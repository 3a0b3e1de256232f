"""Helpers the tests import (never from a conftest): databases, live servers, webhook signing, load."""
