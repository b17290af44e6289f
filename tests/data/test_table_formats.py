"""CSV files as spreadsheets outside the English-speaking world write them: a German or
French Excel's ";" columns and decimal commas, day-first dates, Excel's ``sep=`` line."""

import pandas as pd
import pytest

from selfsup.data.table_files import CsvFormat, csv_format, read_table
from selfsup.modalities import claimed_modality, open_source


def _german_log(path, days=3):
    """A pump's minutes as a German Excel exports them."""
    times = pd.date_range("2025-03-01", periods=days * 1440, freq="min")
    lines = ["Zeitstempel;Temperatur [°C];Druck [mbar];Zustand"]
    for i, t in enumerate(times):
        pressure = f"1.{i % 1000:03d},{i % 10}"  # 1.013,2: thousands grouped by points
        lines.append(f"{t:%d.%m.%Y %H:%M:%S};{20 + i % 7},{i % 10};{pressure};läuft")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_german_excel_export_is_read_as_its_columns_numbers_and_days(tmp_path):
    """Semicolons, decimal commas, thousands points and dd.mm.yyyy times: each column is
    read as what it holds (the file was one column of text; a day-first date read month
    first puts the 1st of March on the 3rd of January)."""
    path = _german_log(tmp_path / "pumpe.csv")
    assert csv_format(path) == CsvFormat(";", ",", ".")
    frame = read_table(path)
    assert frame.columns.tolist() == ["Zeitstempel", "Temperatur [°C]", "Druck [mbar]", "Zustand"]
    assert frame["Temperatur [°C]"].iloc[:2].tolist() == [20.0, 21.1]
    assert frame["Druck [mbar]"].iloc[1] == pytest.approx(1001.1)
    assert frame["Zeitstempel"].iloc[1440] == pd.Timestamp("2025-03-02 00:00:00")
    assert read_table(path, typed_times=True)["Zeitstempel"].dt.day.iloc[-1] == 3
    days = open_source(str(path), window="1d", drop_columns=["Zustand"])
    assert list(days.ids) == [f"pumpe@2025-03-0{d}T00:00:00" for d in (1, 2, 3)]
    assert days.item_shape == (2, 1440)
    rows = open_source(str(path))
    assert "1 time (Zeitstempel)" in rows.inputs_note and "2 numeric" in rows.inputs_note


def test_excels_sep_line_slashed_dates_and_files_read_as_before(tmp_path):
    """Excel's ``sep=;`` first line names the separator; slashed dates are read day or
    month first where the cells show which, and stay text where they do not; comma files
    whose text holds semicolons, and TSV files, are read as before."""
    path = tmp_path / "sep.csv"
    path.write_text("sep=;\nday;amount\n31/03/2025;1,5\n01/04/2025;2,25\n")
    frame = read_table(path)
    assert frame["amount"].tolist() == [1.5, 2.25]
    assert frame["day"].dt.month.tolist() == [3, 4]
    us = tmp_path / "us.csv"
    us.write_text("when,n\n3/31/2025 14:05,1\n4/1/2025 09:00,2\n")
    assert read_table(us)["when"].dt.day.tolist() == [31, 1]
    unsure = tmp_path / "unsure.csv"
    unsure.write_text("when,n\n3/4/2025,1\n4/3/2025,2\n")
    assert read_table(unsure)["when"].tolist() == ["3/4/2025", "4/3/2025"]
    notes = tmp_path / "notes.csv"
    notes.write_text("id,note,price\n1,a;b,1.5\n2,c;d,2.5\n")
    assert csv_format(notes) == CsvFormat() and read_table(notes)["price"].tolist() == [1.5, 2.5]
    tsv = tmp_path / "t.tsv"
    tsv.write_text("a\tb\n1,5\t2\n")
    assert read_table(tsv)["a"].tolist() == ["1,5"]


def test_a_series_option_makes_a_table_file_a_log_for_every_command(tmp_path):
    """``datasets show log.csv --window 1d`` shows the days ``pretrain`` trains on (it
    showed the rows of a table)."""
    assert claimed_modality("log.csv", {"window": "1d"}) == "series"
    assert claimed_modality("log.csv", {"window": None}) == "tabular"
    assert claimed_modality("notes.csv", {"text_column": "body"}) == "text"


def test_workbooks_are_tables_labels_and_texts(tmp_path):
    """An Excel workbook's first sheet is a table like a CSV (numbers, dates, text codes),
    a labels table for a folder of photos, and a column of texts: the spreadsheet a
    hospital's 300 labels or a survey's answers come in (it was refused by its suffix)."""
    import datetime

    import numpy as np
    from PIL import Image

    from selfsup.data.image_folder import ImageFolderSource

    rows = pd.DataFrame(
        {
            "amount": [12.5, 3.0, 7.25, 1.0],
            "visit": [datetime.datetime(2025, 3, d, 9) for d in (1, 2, 3, 4)],
            "ward": ["A", "B", "A", None],
            "note": ["pain in the knee", "follow-up", "fever", "all well"],
        }
    )
    book = tmp_path / "visits.xlsx"
    with pd.ExcelWriter(book) as writer:
        rows.to_excel(writer, sheet_name="Visits", index=False)
        rows.head(1).to_excel(writer, sheet_name="Summary", index=False)
    frame = read_table(book)
    assert frame["amount"].tolist() == [12.5, 3.0, 7.25, 1.0] and len(frame) == 4
    assert frame["visit"].dt.day.tolist() == [1, 2, 3, 4] and frame["ward"].isna().tolist()[3]
    table = open_source(str(book), drop_columns=["note"])
    assert "1 time (visit)" in table.inputs_note and len(table) == 4
    texts = open_source(str(book), text_column="note")
    assert texts.texts[0] == "pain in the knee"
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("001.png", "002.png", "003.png"):
        Image.fromarray(np.full((8, 8), 9, np.uint8)).save(photos / name)
    labels = tmp_path / "labels.xlsx"
    pd.DataFrame({"file_name": ["001.png", "003.png"], "label": ["ok", "bad"]}).to_excel(
        labels, index=False
    )
    source = ImageFolderSource(photos, labels_file=labels)
    assert source.partial_labels.rows.tolist() == [0, 2]
    assert source.partial_labels.classes == ["bad", "ok"]


def test_a_log_orders_its_rows_by_an_iso_time_column_of_any_name(tmp_path):
    """A log whose ISO 8601 times sit in a column of another language's name is ordered by
    it (``'2025-03-01T00:00:00' is not a number`` stopped it)."""
    path = tmp_path / "pompe.csv"
    times = pd.date_range("2025-03-01", periods=96, freq="h")
    path.write_text(
        "horodatage,pression\n"
        + "".join(f"{t:%Y-%m-%dT%H:%M:%S},{i}\n" for i, t in enumerate(times))
    )
    days = open_source(str(path), window="1d")
    assert list(days.ids)[1] == "pompe@2025-03-02T00:00:00" and days.item_shape == (1, 24)


def test_amounts_and_percentages_formatted_for_people_are_numbers(tmp_path):
    """A spreadsheet's amounts (``$1,467.45``, an accountant's ``(12.00)``, ``1.234,50 €``)
    and percentages (``8.6%``) are numbers: a fraud team's amounts were left out as ids and
    its discounts read as 299 categories. Two currencies in one column stay text."""
    orders = tmp_path / "orders.csv"
    orders.write_text(
        'id,amount,discount,refund,note\n1,"$1,467.45",8.6%,($12.00),$5\n'
        '2,$12.50,10%,$0.00,€5\n3,"$2,000",0.5%,(1.50),$7\n'
    )
    frame = read_table(orders)
    assert frame["amount"].tolist() == [1467.45, 12.5, 2000.0]
    assert frame["discount"].tolist() == [8.6, 10.0, 0.5]
    assert frame["refund"].tolist() == [-12.0, 0.0, -1.5]
    assert frame["note"].tolist() == ["$5", "€5", "$7"]
    table = open_source(str(orders), id_column="id", drop_columns=["note"])
    assert table.inputs_note.startswith("columns: 3 numeric (amount, discount, refund)")
    euros = tmp_path / "euro.csv"
    euros.write_text("Betrag;Anteil\n1.234,50 €;12,5 %\n17,00 €;3 %\n")
    assert read_table(euros).to_numpy().tolist() == [[1234.5, 12.5], [17.0, 3.0]]


def test_a_workbook_of_several_sheets_says_which_it_reads(tmp_path):
    """A workbook's first sheet is read; where it has several, the data line says which,
    and a labels table whose columns sit on another sheet names the sheets in its error."""
    import numpy as np
    from PIL import Image

    from selfsup.data.image_folder import ImageFolderSource

    book = tmp_path / "visits.xlsx"
    with pd.ExcelWriter(book) as writer:
        pd.DataFrame({"amount": [1.0, 2.0, 3.0], "ward": ["A", "B", "A"]}).to_excel(
            writer, sheet_name="Visits", index=False
        )
        pd.DataFrame({"total": [6.0]}).to_excel(writer, sheet_name="Summary", index=False)
    assert open_source(str(book)).index_note.startswith(
        "sheet 'Visits', the first of 2 ('Visits', 'Summary'"
    )
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("001.png", "002.png"):
        Image.fromarray(np.full((8, 8), 9, np.uint8)).save(photos / name)
    labels = tmp_path / "labels.xlsx"
    with pd.ExcelWriter(labels) as writer:
        pd.DataFrame({"how to label": ["one row per photo"]}).to_excel(
            writer, sheet_name="Instructions", index=False
        )
        pd.DataFrame({"file_name": ["001.png"], "label": ["ok"]}).to_excel(
            writer, sheet_name="Labels", index=False
        )
    with pytest.raises(ValueError, match="sheet 'Instructions', the first of 2"):
        ImageFolderSource(photos, labels_file=labels)


def test_a_log_of_dates_that_read_either_way_says_how_it_read_them(tmp_path):
    """Slashed dates whose parts are all 12 or below read day first or month first alike;
    a log of them is read month first and says so (it said only an outage of a month)."""
    path = tmp_path / "amb.csv"
    path.write_text("time,v\n03/04/2025 00:00,1\n03/04/2025 01:00,2\n04/04/2025 00:00,3\n")
    log = open_source(str(path), time_column="time", modality="series")
    assert log.warning.startswith("times such as '03/04/2025 00:00' read month first")
    days = tmp_path / "days.csv"
    days.write_text("time,v\n31/03/2025 00:00,1\n31/03/2025 01:00,2\n")
    assert open_source(str(days), time_column="time", modality="series").warning is None
