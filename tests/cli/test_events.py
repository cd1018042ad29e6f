"""The CLI's reader of the task event stream (``GET /tasks/{id}/events``)."""

import pytest

from tmlsr_ray.cli.events import Event, EventStreamParser

STREAM = (': keep-alive\n\nid: 1\nevent: status\ndata: {"status":"pending"}\n\n: keep-alive\n\n'
          'id: 2\r\nevent: progress\r\ndata: {"status":"processing"}\r\n\r\n'
          'id: 3\nevent: end\ndata: {"status":\ndata: "completed"}\n\n')
EVENTS = [Event("status", '{"status":"pending"}', "1"), Event("progress", '{"status":"processing"}', "2"),
          Event("end", '{"status":\n"completed"}', "3")]


@pytest.mark.parametrize("step", [1, 2, 3, 5, 7, 11, len(STREAM)])
def test_events_come_out_whole_wherever_the_chunks_are_cut(step):
    parser = EventStreamParser()
    events = [event for i in range(0, len(STREAM), step) for event in parser.feed(STREAM[i:i + step])]
    assert events == EVENTS


def test_an_event_without_data_or_still_open_is_not_given_out():
    parser = EventStreamParser()
    assert parser.feed("event: status\n\nid: 4\ndata: {}\n") == []
    assert parser.feed("\n") == [Event("message", "{}", "4")]
