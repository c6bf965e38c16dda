"""MovieLens-100k laid out as an online shop would export it, to practise on real-looking files.

A shop's export differs from MovieLens in every way that trips a pipeline up:
a header row, string ids with leading zeros (customer ``"0007"`` is not
customer ``"7"``), ISO 8601 times, a product table with a free-text
description whose titles contain commas, and a European-style product file
separated by semicolons. :func:`export_as_shop` writes those files from the
MovieLens tables, so the applications notebook and the tests can run
``tailrec fit`` on them exactly as a practitioner would on their own.

The files stay on the user's machine, next to the MovieLens data they come
from; MovieLens' licence forbids redistributing them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tailrec.data import InteractionData
from tailrec.files import atomic_write
from tailrec.text import item_text, natural_title

ORDERS_FILE = "orders.csv"
PRODUCTS_FILE = "products.csv"
CUSTOMERS_FILE = "customers.csv"


def customer_id(user_id: int) -> str:
    """MovieLens user 7 as the shop's customer ``"0007"``."""
    return f"{int(user_id):04d}"


def product_id(item_id: int) -> str:
    """MovieLens item 50 as the shop's product ``"SKU-00050"``."""
    return f"SKU-{int(item_id):05d}"


def shop_tables(data: InteractionData) -> dict[str, pd.DataFrame]:
    """The orders, products and customers tables (see the module), in MovieLens' row order."""
    ratings = data.interactions
    orders = pd.DataFrame(
        {
            "customer_id": ratings["user_id"].map(customer_id),
            "product_id": ratings["item_id"].map(product_id),
            "stars": ratings["rating"].astype(int),
            "ordered_at": pd.to_datetime(ratings["timestamp"], unit="s", utc=True).dt.strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
        }
    )
    items = data.items
    products = pd.DataFrame(
        {
            "product_id": items["item_id"].map(product_id),
            "name": items["title"].map(natural_title),
            "release_year": items["year"].astype("Int64"),
            "category": items["genres"].str.replace("|", ", ", regex=False),
            "description": [
                item_text(t, y, g)
                for t, y, g in zip(items["title"], items["year"], items["genres"], strict=True)
            ],
        }
    )
    users = data.users
    customers = pd.DataFrame(
        {
            "customer_id": users["user_id"].map(customer_id),
            "age": users["age"],
            "gender": users["gender"],
            "occupation": users["occupation"],
            "zip_code": users["zip_code"],
        }
    )
    return {ORDERS_FILE: orders, PRODUCTS_FILE: products, CUSTOMERS_FILE: customers}


def export_as_shop(data: InteractionData, folder: str | Path) -> dict[str, Path]:
    """Write ``orders.csv``, ``products.csv`` (semicolon-separated) and ``customers.csv``.

    Returns the path of each file by name. Existing files of the same names
    are replaced; nothing else in ``folder`` is touched.
    """
    folder = Path(folder)
    paths = {}
    for name, table in shop_tables(data).items():
        sep = ";" if name == PRODUCTS_FILE else ","
        text = table.to_csv(index=False, sep=sep)
        paths[name] = atomic_write(folder / name, lambda handle, t=text: handle.write(t.encode()))
    return paths
